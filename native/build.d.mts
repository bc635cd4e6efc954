export declare const RELAY_SOURCE: string
export declare function buildSpliceRelay(
  out: string,
  opts?: { cc?: string; force?: boolean },
): { path: string; built: boolean } | { path: null; error: string }
