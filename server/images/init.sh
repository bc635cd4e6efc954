#!/bin/bash
# /sbin/init of the clincus images. debootstrap's minbase has no init system, and the agents only
# need a live PID 1: Incus starts this, runs everything else through `incus exec`, and stops the
# container by sending SIGPWR (then SIGKILL after a timeout), so exit promptly on it or SIGTERM.
trap 'kill "$sleeper" 2>/dev/null; exit 0' PWR TERM INT
# Orphans (tmux servers, daemonised shells) are re-parented to PID 1; bash reaps any child that
# exits while it waits, so they never pile up as zombies.
while :; do
  sleep 86400 &
  sleeper=$!
  wait "$sleeper"
done
