// What a session's container gets for network egress and the agent hook channel, as pure
// builders (no I/O): the one Incus `proxy` device that makes 127.0.0.1:3128 inside the container
// reach the session's unix socket on the host (the host side tells the egress proxy's HTTP from
// the hook channel's JSON lines by the first byte: proxy-connections.ts), the proxy environment
// (instance config keys `environment.*`), and the argv run as container root after every start
// (`lo` up, apt's proxy file, the login-shell profile). Which agents honour which variable:
// /work/shared/handbook/machine-facts.md and the README.

/**
 * The session's one proxy device (issue 16: Incus spends about 1 s starting each proxy device,
 * at container start and hot-plug alike, so a session has exactly one) and where it listens
 * inside the container.
 */
export const SESSION_DEVICE = 'clincus-host'
export const PROXY_HOST = '127.0.0.1'
export const PROXY_PORT = 3128
export const PROXY_LISTEN = `${PROXY_HOST}:${PROXY_PORT}`
export const PROXY_URL = `http://${PROXY_LISTEN}`
/**
 * The devices of sessions made before issue 16: the egress proxy's and the hook channel's
 * (issue 17), whose hook files inside the container still send to LEGACY_HOOK_PORT. They are
 * replaced by SESSION_DEVICE, which then also listens on that port (one device, one process).
 */
export const LEGACY_DEVICES = ['clincus-egress', 'clincus-agent'] as const
const LEGACY_HOOK_DEVICE = 'clincus-agent'
export const LEGACY_HOOK_PORT = 3130
export const APT_PROXY_FILE = '/etc/apt/apt.conf.d/90clincus-proxy'
export const PROFILE_FILE = '/etc/profile.d/clincus-proxy.sh'

/**
 * Brings `lo` up as container root with SIOCGIFFLAGS/SIOCSIFFLAGS. perl-base is Essential in
 * Debian, so this works in images made before `iproute2` was added (sessions created before
 * issue 12 get `lo` on their next start); the new images' init does the same with `ip`.
 */
export const LO_UP_PERL =
  'socket(my $s, 2, 2, 0) or die "socket: $!\\n"; my $r = pack("a16 s x22", "lo", 0);' +
  ' ioctl($s, 0x8913, $r) or die "SIOCGIFFLAGS: $!\\n"; my (undef, $f) = unpack("a16 s", $r);' +
  ' ioctl($s, 0x8914, pack("a16 s x22", "lo", $f | 1)) or die "SIOCSIFFLAGS: $!\\n"'

/**
 * Instance config for every session: the proxy environment as `environment.NAME` keys (also in
 * mode none: a tool then fails fast). `npmRegistry`: the host's npm registry URL, if any.
 */
export function proxyEnvironment(npmRegistry: string | undefined): Record<string, string> {
  const env: Record<string, string> = {
    HTTPS_PROXY: PROXY_URL,
    HTTP_PROXY: PROXY_URL,
    https_proxy: PROXY_URL,
    http_proxy: PROXY_URL,
    NO_PROXY: 'localhost,127.0.0.1,::1',
    no_proxy: 'localhost,127.0.0.1,::1',
    // Node >= 22.21 / 24: built-in fetch and http honour the variables only with this.
    NODE_USE_ENV_PROXY: '1',
    // Node carries its own CA list; with this it also trusts the system bundle, into which
    // the image build puts the host's extra CAs (a TLS-inspecting corporate proxy, a mirror).
    NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt',
  }
  if (npmRegistry) env.npm_config_registry = npmRegistry
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [`environment.${k}`, v]))
}

/**
 * The proxy device connecting the container's `listen` (host:port inside; PROXY_LISTEN unless
 * given) to the session's `socketPath` on the host. `listen` may name several ports
 * (`127.0.0.1:3128,3130`): one device and one forkproxy serve them all.
 */
export function proxyDevice(socketPath: string, listen = PROXY_LISTEN): Record<string, string> {
  return {
    type: 'proxy',
    listen: `tcp:${listen}`,
    connect: `unix:${socketPath}`,
    bind: 'instance',
  }
}

/** SESSION_DEVICE for a session; `legacyHooks`: also on LEGACY_HOOK_PORT (see LEGACY_DEVICES). */
export function sessionDevice(socketPath: string, legacyHooks: boolean): Record<string, string> {
  return proxyDevice(socketPath, legacyHooks ? `${PROXY_LISTEN},${LEGACY_HOOK_PORT}` : PROXY_LISTEN)
}

/** What to change on an instance so that it has exactly the session's one device. */
export interface DevicePlan {
  /** Devices to remove first (old ones, or ours when wrong), freeing their ports inside. */
  remove: string[]
  /** The device to add as SESSION_DEVICE, or null when it is right already. */
  add: Record<string, string> | null
}

/**
 * The device changes an instance with `devices` needs: its SESSION_DEVICE connecting to
 * `socketPath` and no device of LEGACY_DEVICES. A session whose hook files send to
 * LEGACY_HOOK_PORT (it has, or had when SESSION_DEVICE was added, the old hook device) keeps a
 * listener there. A wrong SESSION_DEVICE (another socket: the runtime directory moved; another
 * listen) is replaced.
 */
export function devicePlan(
  socketPath: string,
  devices: Record<string, Record<string, string>> | undefined,
): DevicePlan {
  const current = devices?.[SESSION_DEVICE]
  const legacyHooks =
    devices?.[LEGACY_HOOK_DEVICE] !== undefined ||
    current?.listen === sessionDevice(socketPath, true).listen
  const want = sessionDevice(socketPath, legacyHooks)
  const right =
    current !== undefined &&
    current.type === 'proxy' &&
    current.listen === want.listen &&
    current.connect === want.connect &&
    current.bind === want.bind
  const remove: string[] = LEGACY_DEVICES.filter((name) => devices?.[name] !== undefined)
  if (current !== undefined && !right) remove.push(SESSION_DEVICE)
  return { remove, add: right ? null : want }
}

/**
 * The argv run as container root after every start, in one exec: `lo` up (LO_UP_PERL), apt's
 * proxy setting, and `env` (proxyEnvironment's keys) as exports for login shells that reset the
 * environment (`su -l` sources /etc/profile, and so /etc/profile.d). A file whose directory does
 * not exist is skipped; the texts are passed as arguments, never interpolated into the script.
 */
export function afterStartArgv(env: Record<string, string>): string[] {
  const apt = `Acquire::http::Proxy "${PROXY_URL}/";\nAcquire::https::Proxy "${PROXY_URL}/";\n`
  const profile = Object.entries(env)
    .map(([k, v]) => `export ${k.slice('environment.'.length)}='${v}'\n`)
    .join('')
  const script =
    `${LO_UP_PERL}; for my $i (0, 2) { my ($path, $text) = @ARGV[$i, $i + 1];` +
    ` my ($dir) = $path =~ m{^(.*)/}; next unless -d $dir;` +
    ` open(my $f, ">", $path) or die "$path: $!\\n"; print $f $text; close($f) or die "$path: $!\\n" }`
  return ['perl', '-e', script, APT_PROXY_FILE, apt, PROFILE_FILE, profile]
}
