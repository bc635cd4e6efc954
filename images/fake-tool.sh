#!/bin/bash
# clincus fake agent: installed as claude, copilot and opencode in the clincus-test image so the
# end-to-end tests drive a session without a real tool or network. Type a line, get `<line>-BACK`;
# `exit` or `quit` ends it. Issue 17's modes drive every agent status: `ask <question>` prints the
# question and waits for the answer (the next line); `work <N>` prints output for N seconds, then
# is back at its prompt. Like Claude Code, it runs the hooks of the copied ~/.claude/settings.json
# (the agent status hook clincus installs) with Claude's JSON on stdin: SessionStart, then for each
# line UserPromptSubmit ... Stop, PreToolUse/PostToolUse while working, Notification for a
# question, SessionEnd on exit.
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

settings=${HOME:-/nonexistent}/.claude/settings.json

# A JSON string of $1 (quotes, backslashes and control characters escaped).
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//[$'\001'-$'\037']/}
  printf '"%s"' "$s"
}

# Runs the hook command the settings give event $1 (clincus's `agent-hook <event>`), as Claude
# does, with Claude's hook input on stdin; $2 is extra JSON fields (with a leading comma).
hook() {
  local event=$1 extra=${2-} cmd
  [ -r "$settings" ] || return 0
  cmd=$(grep -o "\"command\": \"[^\"]*agent-hook $event\"" "$settings" | head -n 1)
  [ -n "$cmd" ] || return 0
  cmd=${cmd#\"command\": \"}
  cmd=${cmd%\"}
  printf '{"session_id":%s,"cwd":%s,"hook_event_name":"%s"%s}' \
    "$(json_string "${session:-fake}")" "$(json_string "$PWD")" "$event" "$extra" |
    bash -c "$cmd" >/dev/null 2>&1
}

# `work <N>`: output for N seconds (a tool call every second), then back at the prompt.
work() {
  local n=$1 end i=0
  end=$((SECONDS + n))
  while [ "$SECONDS" -lt "$end" ]; do
    i=$((i + 1))
    echo "working... step $i"
    if [ $((i % 5)) = 1 ]; then
      hook PreToolUse ',"tool_name":"Bash"'
      hook PostToolUse ',"tool_name":"Bash"'
    fi
    sleep 0.2
  done
  echo "worked for $n s"
}

echo "clincus fake tool ($name) ready"
hook SessionStart ',"source":"startup"'
if [ "$resume" = 1 ]; then echo "Resuming session${resume_id:+ $resume_id}"; fi
if [ -n "$session" ]; then echo "Session: $session"; fi

while IFS= read -r line; do
  line=${line%$'\r'}
  case $line in
    exit | quit)
      hook SessionEnd ',"reason":"prompt_input_exit"'
      echo 'Goodbye!'
      exit 0
      ;;
    'ask '*)
      question=${line#ask }
      hook UserPromptSubmit ",\"prompt\":$(json_string "$line")"
      printf '%s\n' "$question"
      hook Notification ",\"message\":$(json_string "$question"),\"notification_type\":\"elicitation_dialog\""
      IFS= read -r answer || break
      answer=${answer%$'\r'}
      hook UserPromptSubmit ",\"prompt\":$(json_string "$answer")"
      printf '%s-BACK\n' "$answer"
      hook Stop
      ;;
    'work '*)
      hook UserPromptSubmit ",\"prompt\":$(json_string "$line")"
      n=${line#work }
      if [[ $n =~ ^[0-9]{1,4}$ ]]; then work "$n"; else echo "work: not a number: $n"; fi
      hook Stop
      ;;
    *)
      hook UserPromptSubmit ",\"prompt\":$(json_string "$line")"
      printf '%s-BACK\n' "$line"
      hook Stop
      ;;
  esac
done
