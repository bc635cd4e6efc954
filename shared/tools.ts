// The tool registry shared by server and web: exactly the tools the original supports.
export const TOOLS = ['claude', 'copilot', 'opencode'] as const
export type ToolName = (typeof TOOLS)[number]

export function isToolName(value: string): value is ToolName {
  return (TOOLS as readonly string[]).includes(value)
}
