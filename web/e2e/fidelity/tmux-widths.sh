#!/bin/bash
# Asks the tmux this runs under for the width it gives each character: for every argument (a
# printf format writing one character's UTF-8 bytes, e.g. '\xe2\x9c\x85'), writes `a` + the
# character at the start of the line, then a cursor position request (DSR 6); tmux answers on
# the pane's input with where its cursor is, after its own width of the character. Prints one
# width per argument to OUT, then signals the tmux wait-for CHANNEL.
#   tmux-widths.sh OUT CHANNEL FORMAT...
set -u
out=$1
channel=$2
shift 2
stty raw -echo
: >"$out.part"
for f in "$@"; do
  # shellcheck disable=SC2059 # the argument is the format on purpose
  printf "\r\033[2Ka$f\033[6n"
  IFS= read -r -d R reply
  col=${reply##*;}
  echo $((col - 2)) >>"$out.part"
done
mv "$out.part" "$out"
tmux wait-for -S "$channel"
