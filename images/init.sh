#!/bin/bash
# /sbin/init of the clincus images. debootstrap's minbase has no init system, and the agents only
# need a live PID 1: Incus starts this, runs everything else through `incus exec`, and stops the
# container by sending SIGPWR (then SIGKILL after a timeout), so exit promptly on it or SIGTERM.
trap 'kill "$sleeper" 2>/dev/null; exit 0' PWR TERM INT
# Nothing else brings the loopback interface up (no init system, no network configured): without
# it 127.0.0.1 and ::1 are unreachable, and so is the egress proxy's 127.0.0.1:3128. Only as PID 1
# (the container's init), never when the script runs anywhere else (its tests run it on the host).
if [ "$$" = 1 ]; then
  ip link set lo up 2>/dev/null ||
    perl -e 'socket(my $s, 2, 2, 0) or exit 1; my $r = pack("a16 s x22", "lo", 0);
      ioctl($s, 0x8913, $r) or exit 1; my (undef, $f) = unpack("a16 s", $r);
      ioctl($s, 0x8914, pack("a16 s x22", "lo", $f | 1)) or exit 1' 2>/dev/null || true
fi
# Orphans (tmux servers, daemonised shells) are re-parented to PID 1; bash reaps any child that
# exits while it waits, so they never pile up as zombies.
while :; do
  sleep 86400 &
  sleeper=$!
  wait "$sleeper"
done
