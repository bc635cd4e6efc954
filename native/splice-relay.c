/*
 * clincus-splice-relay: moves the bytes of one approved CONNECT tunnel of clincus's egress proxy
 * between two sockets the server already opened, with splice(2) through a pipe per direction, so
 * the payload never crosses into user space (the same way Incus's forkproxy relays a proxy
 * device). It opens nothing itself: no file, no socket, no name lookup.
 *
 * Started by server/network/relay.ts with:
 *   fd 0  control: a stream from the server. First one line "<up> <down>\n" (decimal byte counts),
 *         then <up> bytes the server already read from the client and <down> bytes it already
 *         read from the target: they go out first, in order. After that, end of stream (or any
 *         error) on fd 0 means "stop now": the server closed it, or the server died.
 *   fd 1  status: one line when the relay ends,
 *         {"up":N,"down":N,"end":"eof|idle|stop|signal|error","errno":N}
 *         up   = bytes this process read from the client socket (the pre-read bytes excluded),
 *         down = bytes this process wrote to the client socket (the pre-read bytes included),
 *         so the server adds them to what its own socket counters saw before the handoff.
 *   fd 3  the client socket (the session's side of the tunnel)
 *   fd 4  the target socket (connected to the address the policy checked)
 *   argv  [--idle-ms N]: ends with "idle" after N ms with no byte moved either way (0: never).
 *
 * A direction whose source reaches end of stream has its destination shut down for writing
 * (half-close), so a client that finished sending still gets the whole answer; the relay exits
 * when both directions have ended, on the first error, on SIGTERM/SIGINT/SIGHUP, when the idle
 * time passes, or when fd 0 ends. It asks the kernel to kill it when its parent dies
 * (PR_SET_PDEATHSIG), so a crashed server leaves no relay behind.
 *
 * Build: cc -O2 -Wall -Wextra -o clincus-splice-relay splice-relay.c   (Linux only, no deps)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_FD 0
#define STATUS_FD 1
#define CLIENT_FD 3
#define TARGET_FD 4
/* What the server may hand over per direction (its socket buffers hold far less). */
#define MAX_PRE (16 * 1024 * 1024)
/* The pipe size asked for; the kernel caps it at /proc/sys/fs/pipe-max-size (1 MiB default). */
#define PIPE_WANT (1024 * 1024)

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

/* Reads exactly len bytes from the (blocking) control stream; -1 on end or error. */
static int read_full(int fd, char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = read(fd, buf + off, len - off);
    if (n > 0) off += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else return -1;
  }
  return 0;
}

/* The header line "<up> <down>\n", read one byte at a time so nothing after it is consumed. */
static int read_header(size_t *up, size_t *down) {
  char line[64];
  size_t i = 0;
  for (;;) {
    if (i + 1 >= sizeof line) return -1;
    if (read_full(CONTROL_FD, line + i, 1) < 0) return -1;
    if (line[i] == '\n') break;
    i++;
  }
  line[i] = '\0';
  char *end = NULL;
  errno = 0;
  unsigned long long a = strtoull(line, &end, 10);
  if (errno || end == line || *end != ' ') return -1;
  char *p = end + 1;
  unsigned long long b = strtoull(p, &end, 10);
  if (errno || end == p || *end != '\0') return -1;
  if (a > MAX_PRE || b > MAX_PRE) return -1;
  *up = (size_t)a;
  *down = (size_t)b;
  return 0;
}

static int read_pre(struct dir *d, size_t len) {
  d->pre_len = len;
  if (len == 0) return 0;
  d->pre = malloc(len);
  if (!d->pre) return -1;
  return read_full(CONTROL_FD, d->pre, len);
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
      if (d->pre_off == d->pre_len) {
        free(d->pre);
        d->pre = NULL;
      }
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

int main(int argc, char **argv) {
  long idle_ms = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--idle-ms") == 0 && i + 1 < argc) {
      char *end = NULL;
      idle_ms = strtol(argv[++i], &end, 10);
      if (!end || *end != '\0' || idle_ms < 0) return 2;
    } else {
      return 2;
    }
  }
  /* Die with the server; a parent already gone shows as the end of fd 0 below. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  struct dir up = {.src = CLIENT_FD, .dst = TARGET_FD};
  struct dir down = {.src = TARGET_FD, .dst = CLIENT_FD};
  size_t pre_up = 0, pre_down = 0;
  if (read_header(&pre_up, &pre_down) < 0 || read_pre(&up, pre_up) < 0 ||
      read_pre(&down, pre_down) < 0)
    finish(&up, &down, "stop", 0);
  if (open_pipe(&up) < 0 || open_pipe(&down) < 0) finish(&up, &down, "error", errno);
  for (int fd = CLIENT_FD; fd <= TARGET_FD; fd++) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) finish(&up, &down, "error", errno);
  }

  int64_t last = now_ms();
  int client_hup = 0, target_hup = 0;
  for (;;) {
    short up_src, up_dst, down_src, down_dst;
    int a = step(&up, &up_src, &up_dst);
    if (a < 0) finish(&up, &down, "error", errno);
    int b = step(&down, &down_src, &down_dst);
    if (b < 0) finish(&up, &down, "error", errno);
    if (up.shut && down.shut) finish(&up, &down, "eof", 0);
    if (a > 0 || b > 0) {
      last = now_ms();
      continue;
    }
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
    /* Anything on the control stream after the header is the end of it (or a misuse). */
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
