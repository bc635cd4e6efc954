// What a session's container gets for network egress, as pure builders (no I/O): the Incus
// `proxy` device that makes 127.0.0.1:3128 inside the container reach the session's unix socket
// on the host, the proxy environment (instance config keys `environment.*`), and the argv run as
// container root after every start (`lo` up, apt's proxy file, the login-shell profile). Which
// agents honour which variable: /work/shared/handbook/machine-facts.md and the README.

/** The proxy device's name and where it listens inside the container. */
export const EGRESS_DEVICE = 'clincus-egress'
export const PROXY_LISTEN = '127.0.0.1:3128'
export const PROXY_URL = `http://${PROXY_LISTEN}`
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
 * given) to the session's `socketPath` on the host.
 */
export function proxyDevice(socketPath: string, listen = PROXY_LISTEN): Record<string, string> {
  return {
    type: 'proxy',
    listen: `tcp:${listen}`,
    connect: `unix:${socketPath}`,
    bind: 'instance',
  }
}

/**
 * Whether an instance's device disagrees with the session: present when there should be none
 * (`wanted` false: mode none), missing otherwise, or connecting to another socket (the runtime
 * directory moved, e.g. clincus ran as root before and as a user now).
 */
export function deviceWrong(
  wanted: boolean,
  socketPath: string,
  dev: Record<string, string> | undefined,
): boolean {
  if (!wanted) return dev !== undefined
  return dev?.connect !== `unix:${socketPath}`
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
