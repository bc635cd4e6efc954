#!/bin/bash
# clincus fake agent: installed as claude, copilot and opencode in the clincus-test image so the
# end-to-end tests drive a session without a real tool or network. Type a line, get `<line>-BACK`;
# `exit` or `quit` ends it.
name=${0##*/}
session=''
resume=0
resume_id=''
while [ $# -gt 0 ]; do
  case $1 in
    --version) echo "$name 0.0.0 (clincus fake tool)"; exit 0 ;;
    --session-id) session=${2-}; shift ;;
    --session-id=*) session=${1#*=} ;;
    --resume | --continue)
      resume=1
      # claude's --resume takes an optional id.
      if [ $# -gt 1 ] && [ "${2#-}" = "$2" ]; then resume_id=$2; shift; fi
      ;;
    --resume=*) resume=1; resume_id=${1#*=} ;;
    *) ;; # --verbose, --permission-mode X, --allow-all-tools and the like
  esac
  shift
done

echo "clincus fake tool ($name) ready"
if [ "$resume" = 1 ]; then echo "Resuming session${resume_id:+ $resume_id}"; fi
if [ -n "$session" ]; then echo "Session: $session"; fi

while IFS= read -r line; do
  line=${line%$'\r'}
  case $line in
    exit | quit) echo 'Goodbye!'; exit 0 ;;
    *) printf '%s-BACK\n' "$line" ;;
  esac
done
