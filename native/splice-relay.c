/*
 * clincus-splice-relay: moves the bytes of approved CONNECT tunnels of clincus's egress proxy
 * between two sockets the server already opened, with splice(2) through a pipe per direction, so
 * the payload never crosses into user space (the same way Incus's forkproxy relays a proxy
 * device). It opens nothing itself: no file, no socket, no name lookup.
 *
 * One process, started once by server/network/relay.ts (child_process.spawn with an 'ipc' stdio
 * entry, serialization 'json'), receives each tunnel's two sockets over Node's IPC channel (the fd
 * named by NODE_CHANNEL_FD) and fork()s a small child per tunnel that relays it, so a tunnel
 * waits for a fork of this tiny process (~0.1 ms), not for a program to start.
 *
 * The channel, as Node's lib/internal/child_process.js speaks it (one JSON object per line; a
 * handle travels as SCM_RIGHTS with the first bytes of its line):
 *   in   {"type":"start","id":N,"preUp":"<base64>","preDown":"<base64>","idleMs":N}
 *        {"cmd":"NODE_HANDLE","type":"net.Socket","msg":{"type":"client|target","id":N}} + fd
 *        {"type":"stop","id":N}
 *        {"cmd":"NODE_SOCKET_NOTIFY_CLOSE"|"NODE_SOCKET_GET_COUNT","key":K} (a net.Server whose
 *        socket was sent asks for its connections; none are counted here)
 *   out  {"cmd":"NODE_HANDLE_ACK"} for each handle (NACK when the line came without one, so Node
 *        sends it again), {"cmd":"NODE_SOCKET_ALL_CLOSED"|"NODE_SOCKET_COUNT",...} answers,
 *        {"type":"started","id":N,"pid":P}   {"type":"failed","id":N} (no child could be made)
 *        {"type":"done","id":N,"status":S|null,"signal":"SIG..."|null}
 *   S = {"up":N,"down":N,"end":"eof|idle|stop|signal|error","errno":N}
 *        up   = bytes the relay read from the client socket (the pre-read bytes excluded),
 *        down = bytes it wrote to the client socket (the pre-read bytes included),
 *        so the server adds them to what its own socket counters saw before the handoff.
 *   preUp / preDown: bytes the server already read from the client / the target; they go out
 *   first, in order.
 *
 * A tunnel's child: a direction whose source reaches end of stream has its destination shut down
 * for writing (half-close), so a client that finished sending still gets the whole answer; it
 * exits when both directions have ended, on the first error, on SIGTERM/SIGINT/SIGHUP, when the
 * idle time passes (no byte moved either way), or when its control pipe from this process ends
 * ("stop", or this process died). Both this process and its children ask the kernel to kill them
 * when their parent dies (PR_SET_PDEATHSIG), and this process exits when the channel ends, so a
 * crashed server leaves no relay behind.
 *
 * Build: cc -O2 -Wall -Wextra -o clincus-splice-relay splice-relay.c   (Linux only, no deps)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A tunnel child's descriptors */
#define CONTROL_FD 0
#define STATUS_FD 1
#define CLIENT_FD 3
#define TARGET_FD 4
/* What the server may hand over per direction (its socket buffers hold far less). */
#define MAX_PRE (16 * 1024 * 1024)
/* The longest channel line: a start message with both directions' bytes in base64. */
#define MAX_LINE (2 * (MAX_PRE / 3 + 1) * 4 + 4096)
/* The pipe size asked for; the kernel caps it at /proc/sys/fs/pipe-max-size (1 MiB default). */
#define PIPE_WANT (1024 * 1024)
/* Busy rounds between looks at the control pipe and signals while bytes keep moving. */
#define BUSY_CHECK 8

/* ---------------------------------------------------------------- one tunnel's relay (child) */

struct dir {
  int src, dst;
  int pipe_r, pipe_w;
  size_t in_pipe; /* bytes in the pipe, not yet written to dst */
  char *pre;      /* bytes the server read before the handoff, written first */
  size_t pre_len, pre_off;
  int eof;  /* src reached end of stream */
  int shut; /* dst shut down for writing */
  uint64_t read_bytes, written_bytes;
};

static int pipe_size = 65536;

static void finish(const struct dir *up, const struct dir *down, const char *end, int err) {
  char line[160];
  int n = snprintf(line, sizeof line, "{\"up\":%" PRIu64 ",\"down\":%" PRIu64
                   ",\"end\":\"%s\",\"errno\":%d}\n",
                   up->read_bytes, down->written_bytes, end, err);
  if (n > 0) {
    ssize_t w = write(STATUS_FD, line, (size_t)n);
    (void)w;
  }
  _exit(0);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_pipe(struct dir *d) {
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
  /* Best effort: a smaller pipe only means more system calls. */
  if (fcntl(p[1], F_SETPIPE_SZ, PIPE_WANT) < 0) (void)fcntl(p[1], F_SETPIPE_SZ, 262144);
  int got = fcntl(p[1], F_GETPIPE_SZ);
  if (got > 0 && got < pipe_size) pipe_size = got;
  if (got > pipe_size) pipe_size = got;
  d->pipe_r = p[0];
  d->pipe_w = p[1];
  return 0;
}

static int fatal(int err) {
  /* The peer went away or the socket failed: the tunnel is over. */
  return err != EAGAIN && err != EINTR;
}

/*
 * Moves what it can in one direction without blocking. Returns 1 when something moved, 0 when
 * it would block, -1 on error (errno set). *want_src / *want_dst say what to wait for.
 */
static int step(struct dir *d, short *want_src, short *want_dst) {
  int moved = 0;
  *want_src = 0;
  *want_dst = 0;
  if (d->shut) return 0;
  /* fill the pipe: first the pre-read bytes, then the source socket */
  if (d->pre_off < d->pre_len) {
    ssize_t n = write(d->pipe_w, d->pre + d->pre_off, d->pre_len - d->pre_off);
    if (n > 0) {
      d->pre_off += (size_t)n;
      d->in_pipe += (size_t)n;
      moved = 1;
    } else if (n < 0 && fatal(errno)) return -1;
  } else if (!d->eof && d->in_pipe < (size_t)pipe_size) {
    ssize_t n = splice(d->src, NULL, d->pipe_w, NULL, (size_t)pipe_size - d->in_pipe,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->in_pipe += (size_t)n;
      d->read_bytes += (uint64_t)n;
      moved = 1;
    } else if (n == 0) {
      d->eof = 1;
      moved = 1;
    } else if (fatal(errno)) return -1;
  }
  /* drain the pipe into the destination */
  if (d->in_pipe > 0) {
    ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->in_pipe,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->in_pipe -= (size_t)n;
      d->written_bytes += (uint64_t)n;
      moved = 1;
    } else if (n < 0 && fatal(errno)) return -1;
    else if (n < 0) *want_dst = POLLOUT;
  }
  if (d->eof && d->in_pipe == 0 && d->pre_off == d->pre_len) {
    if (shutdown(d->dst, SHUT_WR) < 0 && errno != ENOTCONN) return -1;
    d->shut = 1;
    return 1;
  }
  /*
   * Wait for the source only when the pipe is empty: a pipe holding bytes may be full in slots
   * (a splice from a socket can fill a slot with a few bytes), where splicing in says EAGAIN
   * while the source is readable, and polling the source would spin.
   */
  if (!moved && d->in_pipe == 0 && !d->eof && d->pre_off == d->pre_len) *want_src = POLLIN;
  return moved;
}

/* Blocks SIGTERM, SIGINT and SIGHUP and returns a signalfd that reads them (-1 on failure). */
static int signal_fd(void) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Relays one tunnel on fds 0, 1, 3, 4 (see the top); never returns. */
static void relay(char *pre_up, size_t pre_up_len, char *pre_down, size_t pre_down_len,
                  long idle_ms) {
  int sfd = signal_fd();

  struct dir up = {.src = CLIENT_FD, .dst = TARGET_FD, .pre = pre_up, .pre_len = pre_up_len};
  struct dir down = {
      .src = TARGET_FD, .dst = CLIENT_FD, .pre = pre_down, .pre_len = pre_down_len};
  if (open_pipe(&up) < 0 || open_pipe(&down) < 0) finish(&up, &down, "error", errno);
  for (int fd = CLIENT_FD; fd <= TARGET_FD; fd++) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) finish(&up, &down, "error", errno);
  }

  /*
   * A deeper send buffer on the session's socket (a unix socket to Incus's forkproxy, which reads
   * 32 KiB at a time): more bytes wait for forkproxy each time it runs. It took the egress bench
   * from ~0.85x to ~1.2x of the direct path on a busy 2-core machine (docs/performance.md). Best
   * effort; the kernel caps it at net.core.wmem_max. A client that stops reading holds at most
   * this much more kernel memory (the per-session connection cap bounds the tunnels). The
   * target's TCP buffers tune themselves.
   */
  int sndbuf = 4 * 1024 * 1024;
  (void)setsockopt(CLIENT_FD, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  int64_t last = now_ms();
  int client_hup = 0, target_hup = 0, busy = 0;
  for (;;) {
    short up_src, up_dst, down_src, down_dst;
    int a = step(&up, &up_src, &up_dst);
    if (a < 0) finish(&up, &down, "error", errno);
    int b = step(&down, &down_src, &down_dst);
    if (b < 0) finish(&up, &down, "error", errno);
    if (up.shut && down.shut) finish(&up, &down, "eof", 0);
    if (a > 0 || b > 0) {
      last = now_ms();
      /* A stop or a signal is seen while bytes keep moving too, not only when they pause. */
      if (++busy < BUSY_CHECK) continue;
      busy = 0;
      struct pollfd chk[2] = {{.fd = CONTROL_FD, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
      if (poll(chk, 2, 0) > 0) {
        if (chk[1].revents) finish(&up, &down, "signal", 0);
        if (chk[0].revents) finish(&up, &down, "stop", 0);
      }
      continue;
    }
    busy = 0;
    short client_ev = (short)(up_src | down_dst), target_ev = (short)(down_src | up_dst);
    /*
     * poll reports a hang-up whether asked or not: a socket that hung up and has nothing asked
     * of it is left out, or the loop would spin on it.
     */
    struct pollfd fds[4] = {
        {.fd = client_hup && !client_ev ? -1 : CLIENT_FD, .events = client_ev},
        {.fd = target_hup && !target_ev ? -1 : TARGET_FD, .events = target_ev},
        {.fd = CONTROL_FD, .events = POLLIN},
        {.fd = sfd, .events = POLLIN},
    };
    int timeout = -1;
    if (idle_ms > 0) {
      int64_t left = last + idle_ms - now_ms();
      if (left <= 0) finish(&up, &down, "idle", 0);
      timeout = left > INT_MAX ? INT_MAX : (int)left;
    }
    int r = poll(fds, 4, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      finish(&up, &down, "error", errno);
    }
    if (r == 0) continue; /* the idle check above decides */
    if (fds[3].revents) finish(&up, &down, "signal", 0);
    /* Anything on the control pipe is its end (nothing is ever written to it). */
    if (fds[2].revents) finish(&up, &down, "stop", 0);
    for (int i = 0; i < 2; i++) {
      if (fds[i].revents & POLLERR) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(i == 0 ? CLIENT_FD : TARGET_FD, SOL_SOCKET, SO_ERROR, &err, &len);
        finish(&up, &down, "error", err);
      }
    }
    /* A hang-up with data or the end still to read shows in the next splice. */
    if (fds[0].revents & POLLHUP) client_hup = 1;
    if (fds[1].revents & POLLHUP) target_hup = 1;
  }
}

/* ------------------------------------------------------------------ the channel (JSON lines) */

static int channel = -1;

/* Writes a whole line to the channel (blocking); the server's end went away: exit. */
static void send_line(const char *s, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(channel, s + off, len - off);
    if (n > 0) off += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = channel, .events = POLLOUT};
      (void)poll(&p, 1, -1);
    } else _exit(0);
  }
}

static void sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sendf(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof line) send_line(line, (size_t)n);
}

/* Minimal JSON reading, enough for the server's messages above: p..e is one value. */
static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
  return p;
}

static const char *skip_value(const char *p, const char *e, int depth);

static const char *skip_string(const char *p, const char *e) {
  if (p >= e || *p != '"') return NULL;
  for (p++; p < e; p++) {
    if (*p == '\\') {
      if (++p >= e) return NULL;
    } else if (*p == '"') return p + 1;
  }
  return NULL;
}

static const char *skip_value(const char *p, const char *e, int depth) {
  p = ws(p, e);
  if (p >= e || depth > 8) return NULL;
  if (*p == '"') return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = ws(p + 1, e);
    if (p < e && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = skip_string(ws(p, e), e);
        if (!p) return NULL;
        p = ws(p, e);
        if (p >= e || *p != ':') return NULL;
        p++;
      }
      p = skip_value(p, e, depth + 1);
      if (!p) return NULL;
      p = ws(p, e);
      if (p < e && *p == ',') {
        p++;
        continue;
      }
      if (p < e && *p == close) return p + 1;
      return NULL;
    }
  }
  const char *s = p;
  while (p < e && (strchr("+-.eE", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')))
    p++;
  return p > s ? p : NULL;
}

/* The value of `key` in the object at p (its raw text in *v..*ve), or 0. */
static int get(const char *p, const char *e, const char *key, const char **v, const char **ve) {
  p = ws(p, e);
  if (p >= e || *p != '{') return 0;
  p = ws(p + 1, e);
  if (p < e && *p == '}') return 0;
  size_t klen = strlen(key);
  for (;;) {
    const char *ks = ws(p, e);
    const char *kend = skip_string(ks, e);
    if (!kend) return 0;
    p = ws(kend, e);
    if (p >= e || *p != ':') return 0;
    const char *vs = ws(p + 1, e);
    const char *vend = skip_value(vs, e, 0);
    if (!vend) return 0;
    if ((size_t)(kend - ks) == klen + 2 && memcmp(ks + 1, key, klen) == 0) {
      *v = vs;
      *ve = vend;
      return 1;
    }
    p = ws(vend, e);
    if (p < e && *p == ',') {
      p++;
      continue;
    }
    return 0;
  }
}

/* Whether `key` holds the string `want` (no escapes in it). */
static int get_is(const char *p, const char *e, const char *key, const char *want) {
  const char *v, *ve;
  if (!get(p, e, key, &v, &ve)) return 0;
  size_t n = strlen(want);
  return (size_t)(ve - v) == n + 2 && v[0] == '"' && memcmp(v + 1, want, n) == 0;
}

/* A non-negative integer at `key`, or -1. */
static long long get_int(const char *p, const char *e, const char *key) {
  const char *v, *ve;
  if (!get(p, e, key, &v, &ve) || ve - v > 18) return -1;
  long long n = 0;
  for (const char *q = v; q < ve; q++) {
    if (*q < '0' || *q > '9') return -1;
    n = n * 10 + (*q - '0');
  }
  return ve > v ? n : -1;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes the base64 string at `key` into a malloc'd buffer; -1 when it is not one. */
static int get_b64(const char *p, const char *e, const char *key, char **out, size_t *len) {
  const char *v, *ve;
  *out = NULL;
  *len = 0;
  if (!get(p, e, key, &v, &ve) || ve - v < 2 || *v != '"') return -1;
  v++;
  ve--;
  size_t n = (size_t)(ve - v);
  if (n == 0) return 0;
  if (n % 4 != 0 || n / 4 * 3 > MAX_PRE + 2) return -1;
  char *buf = malloc(n / 4 * 3);
  if (!buf) return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int a = b64val(v[i]), b = b64val(v[i + 1]);
    int c = v[i + 2] == '=' ? 0 : b64val(v[i + 2]), d = v[i + 3] == '=' ? 0 : b64val(v[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0) {
      free(buf);
      return -1;
    }
    uint32_t w = (uint32_t)(a << 18 | b << 12 | c << 6 | d);
    buf[o++] = (char)(w >> 16);
    if (v[i + 2] != '=') buf[o++] = (char)(w >> 8);
    if (v[i + 3] != '=') buf[o++] = (char)w;
  }
  if (o > MAX_PRE) {
    free(buf);
    return -1;
  }
  *out = buf;
  *len = o;
  return 0;
}

/* ------------------------------------------------------------------------------- the tunnels */

struct tunnel {
  long long id;
  int have_start, stopped;
  int client, target; /* -1 until received */
  char *pre_up, *pre_down;
  size_t pre_up_len, pre_down_len;
  long idle_ms;
  pid_t pid;    /* 0 until the child runs */
  int ctl_w;    /* the child's control pipe; closing it stops the child */
  int status_r; /* the child's status line */
  char status[192];
  size_t status_len;
  struct tunnel *next;
};

static struct tunnel *tunnels = NULL;
static size_t n_tunnels = 0;

static struct tunnel *find(long long id, int create) {
  for (struct tunnel *t = tunnels; t; t = t->next)
    if (t->id == id) return t;
  if (!create) return NULL;
  struct tunnel *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->id = id;
  t->client = t->target = t->ctl_w = t->status_r = -1;
  t->next = tunnels;
  tunnels = t;
  n_tunnels++;
  return t;
}

static void drop(struct tunnel *t) {
  for (struct tunnel **pp = &tunnels; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  }
  n_tunnels--;
  if (t->client >= 0) close(t->client);
  if (t->target >= 0) close(t->target);
  if (t->ctl_w >= 0) close(t->ctl_w);
  if (t->status_r >= 0) close(t->status_r);
  free(t->pre_up);
  free(t->pre_down);
  free(t);
}

/* Closes every descriptor from `from` up (the child keeps only its own). */
static void close_from(int from) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0) return;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    for (int fd = from; fd < 65536; fd++) close(fd);
    return;
  }
  int keep = dirfd(d);
  int fds[1024];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < 1024) {
    int fd = atoi(de->d_name);
    if (fd >= from && fd != keep) fds[n++] = fd;
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

static const char *signame(int sig) {
  switch (sig) {
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "SIGOTHER";
  }
}

/* Starts the tunnel's child once the start message and both sockets are here. */
static void maybe_start(struct tunnel *t) {
  if (!t->have_start || t->client < 0 || t->target < 0 || t->pid > 0) return;
  if (t->stopped) {
    sendf("{\"type\":\"done\",\"id\":%lld,\"status\":null,\"signal\":null}\n", t->id);
    drop(t);
    return;
  }
  int ctl[2], st[2];
  if (pipe2(ctl, O_CLOEXEC) < 0) goto failed;
  if (pipe2(st, O_CLOEXEC) < 0) {
    close(ctl[0]);
    close(ctl[1]);
    goto failed;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    /* Out of the way first (any of them may sit on 0-4), then into place. */
    int c = fcntl(ctl[0], F_DUPFD, 100), s = fcntl(st[1], F_DUPFD, 100);
    int a = fcntl(t->client, F_DUPFD, 100), b = fcntl(t->target, F_DUPFD, 100);
    if (c < 0 || s < 0 || a < 0 || b < 0) _exit(0);
    if (dup2(c, CONTROL_FD) < 0 || dup2(s, STATUS_FD) < 0 || dup2(a, CLIENT_FD) < 0 ||
        dup2(b, TARGET_FD) < 0)
      _exit(0);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0 && devnull != 2) dup2(devnull, 2);
    close_from(TARGET_FD + 1);
    relay(t->pre_up, t->pre_up_len, t->pre_down, t->pre_down_len, t->idle_ms);
  }
  close(ctl[0]);
  close(st[1]);
  if (pid < 0) {
    close(ctl[1]);
    close(st[0]);
    goto failed;
  }
  close(t->client);
  close(t->target);
  t->client = t->target = -1;
  free(t->pre_up);
  free(t->pre_down);
  t->pre_up = t->pre_down = NULL;
  t->pid = pid;
  t->ctl_w = ctl[1];
  t->status_r = st[0];
  fcntl(t->status_r, F_SETFL, O_NONBLOCK);
  sendf("{\"type\":\"started\",\"id\":%lld,\"pid\":%d}\n", t->id, (int)pid);
  return;
failed:
  sendf("{\"type\":\"failed\",\"id\":%lld}\n", t->id);
  sendf("{\"type\":\"done\",\"id\":%lld,\"status\":null,\"signal\":null}\n", t->id);
  drop(t);
}

/* The child's status pipe is readable: collect its line; at its end, report and reap. */
static void on_status(struct tunnel *t) {
  char buf[256];
  ssize_t n = read(t->status_r, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n > 0) {
    size_t room = sizeof t->status - 1 - t->status_len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(t->status + t->status_len, buf, take);
    t->status_len += take;
    return;
  }
  int ws_ = 0;
  while (waitpid(t->pid, &ws_, 0) < 0 && errno == EINTR) {
  }
  t->status[t->status_len] = '\0';
  char *nl = strchr(t->status, '\n');
  int ok = nl && t->status[0] == '{' && nl[-1] == '}';
  if (ok) *nl = '\0';
  for (char *q = t->status; ok && *q; q++)
    if (*q < 0x20 || *q > 0x7e) ok = 0;
  const char *sig = WIFSIGNALED(ws_) ? signame(WTERMSIG(ws_)) : NULL;
  char line[400];
  int len = snprintf(line, sizeof line, "{\"type\":\"done\",\"id\":%lld,\"status\":%s,\"signal\":%s%s%s}\n",
                     t->id, ok ? t->status : "null", sig ? "\"" : "", sig ? sig : "null",
                     sig ? "\"" : "");
  if (len > 0 && (size_t)len < sizeof line) send_line(line, (size_t)len);
  drop(t);
}

/* ----------------------------------------------------------------------- reading the channel */

static char *inbuf = NULL;
static size_t in_len = 0, in_cap = 0;
/* Descriptors that arrived and whose NODE_HANDLE line is not read yet, in order. */
static int fdq[64];
static size_t fdq_len = 0;

static void on_line(const char *p, const char *e) {
  const char *v, *ve;
  if (get_is(p, e, "cmd", "NODE_HANDLE")) {
    if (fdq_len == 0) {
      sendf("{\"cmd\":\"NODE_HANDLE_NACK\"}\n");
      return;
    }
    int fd = fdq[0];
    memmove(fdq, fdq + 1, (--fdq_len) * sizeof fdq[0]);
    sendf("{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
    const char *m, *me;
    long long id = -1;
    int which = 0;
    if (get(p, e, "msg", &m, &me)) {
      id = get_int(m, me, "id");
      which = get_is(m, me, "type", "client") ? 1 : get_is(m, me, "type", "target") ? 2 : 0;
    }
    struct tunnel *t = id >= 0 && which ? find(id, 1) : NULL;
    int *slot = !t ? NULL : which == 1 ? &t->client : &t->target;
    if (!slot || *slot >= 0 || t->pid > 0) {
      close(fd);
      return;
    }
    *slot = fd;
    maybe_start(t);
    return;
  }
  if (get_is(p, e, "cmd", "NODE_SOCKET_NOTIFY_CLOSE") && get(p, e, "key", &v, &ve)) {
    char line[512];
    int n = snprintf(line, sizeof line, "{\"cmd\":\"NODE_SOCKET_ALL_CLOSED\",\"key\":%.*s}\n",
                     (int)(ve - v), v);
    if (n > 0 && (size_t)n < sizeof line) send_line(line, (size_t)n);
    return;
  }
  if (get_is(p, e, "cmd", "NODE_SOCKET_GET_COUNT") && get(p, e, "key", &v, &ve)) {
    char line[512];
    int n = snprintf(line, sizeof line,
                     "{\"cmd\":\"NODE_SOCKET_COUNT\",\"key\":%.*s,\"count\":0}\n", (int)(ve - v), v);
    if (n > 0 && (size_t)n < sizeof line) send_line(line, (size_t)n);
    return;
  }
  long long id = get_int(p, e, "id");
  if (id < 0) return;
  if (get_is(p, e, "type", "start")) {
    struct tunnel *t = find(id, 1);
    if (!t || t->have_start) return;
    long long idle = get_int(p, e, "idleMs");
    t->idle_ms = idle > 0 && idle < LONG_MAX ? (long)idle : 0;
    if (get_b64(p, e, "preUp", &t->pre_up, &t->pre_up_len) < 0 ||
        get_b64(p, e, "preDown", &t->pre_down, &t->pre_down_len) < 0)
      t->stopped = 1; /* malformed: the tunnel is closed, not relayed with bytes missing */
    t->have_start = 1;
    maybe_start(t);
  } else if (get_is(p, e, "type", "stop")) {
    struct tunnel *t = find(id, 0);
    if (!t) return;
    if (t->pid > 0) {
      if (t->ctl_w >= 0) close(t->ctl_w);
      t->ctl_w = -1;
    } else {
      t->stopped = 1;
      maybe_start(t);
    }
  }
}

/* Reads what the channel has; returns -1 when it ended (the server is gone). */
static int on_channel(void) {
  if (in_cap - in_len < 65536) {
    size_t cap = in_cap ? in_cap * 2 : 131072;
    char *nb = realloc(inbuf, cap);
    if (!nb) return -1;
    inbuf = nb;
    in_cap = cap;
  }
  char cbuf[CMSG_SPACE(sizeof(int) * 16)];
  struct iovec iov = {.iov_base = inbuf + in_len, .iov_len = in_cap - in_len};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof cbuf};
  ssize_t n = recvmsg(channel, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *fds = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < k; i++) {
      if (fdq_len < sizeof fdq / sizeof fdq[0]) fdq[fdq_len++] = fds[i];
      else close(fds[i]);
    }
  }
  if (n == 0) return -1;
  in_len += (size_t)n;
  size_t start = 0;
  for (;;) {
    char *nl = memchr(inbuf + start, '\n', in_len - start);
    if (!nl) break;
    on_line(inbuf + start, nl);
    start = (size_t)(nl - inbuf) + 1;
  }
  memmove(inbuf, inbuf + start, in_len - start);
  in_len -= start;
  return in_len > MAX_LINE ? -1 : 0;
}

int main(int argc, char **argv) {
  (void)argv;
  if (argc != 1) return 2;
  const char *env = getenv("NODE_CHANNEL_FD");
  char *end = NULL;
  long fd = env ? strtol(env, &end, 10) : -1;
  if (!env || !end || *end != '\0' || fd < 0 || fd > INT_MAX) return 2;
  channel = (int)fd;
  /* Die with the server; a server already gone shows as the end of the channel below. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  int fl = fcntl(channel, F_GETFL);
  if (fl < 0) return 2;
  fcntl(channel, F_SETFL, fl & ~O_NONBLOCK);
  int sfd = signal_fd();

  struct pollfd *fds = NULL;
  struct tunnel **who = NULL;
  size_t cap = 0;
  for (;;) {
    size_t want = n_tunnels + 2;
    if (want > cap) {
      cap = want * 2;
      fds = realloc(fds, cap * sizeof *fds);
      who = realloc(who, cap * sizeof *who);
      if (!fds || !who) return 1;
    }
    size_t n = 0;
    fds[n++] = (struct pollfd){.fd = channel, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    for (struct tunnel *t = tunnels; t; t = t->next) {
      if (t->status_r < 0) continue;
      who[n] = t;
      fds[n++] = (struct pollfd){.fd = t->status_r, .events = POLLIN};
    }
    int r = poll(fds, (nfds_t)n, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    /* SIGTERM/SIGINT/SIGHUP: exit; the children die with this process (PR_SET_PDEATHSIG). */
    if (fds[1].revents) return 0;
    for (size_t i = 2; i < n; i++)
      if (fds[i].revents) on_status(who[i]);
    if (fds[0].revents && on_channel() < 0) return 0;
  }
}
