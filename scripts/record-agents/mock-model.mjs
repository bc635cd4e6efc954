// A scripted model API for recording the agents' screens (scripts/record-agents/record.ts): runs
// inside the recording container on 127.0.0.1 (plain Node, no dependencies) and answers the
// Anthropic Messages API (POST /v1/messages, SSE or JSON) and the OpenAI Chat Completions API
// (POST /v1/chat/completions, SSE or JSON). What it answers depends on the last user text of a
// request that offers tools:
//   "long"  a slow streamed text (about 90 s), so the agent stays busy ("working")
//   "run"   a call of the request's shell tool (Bash/bash/shell): a permission prompt unless bypassed
//   "slow"  a call of the shell tool running a 45 s command (working while the tool runs)
//   "ask"   a call of the request's question tool (AskUserQuestion/question/ask_user)
//   "edit"  a call of the request's file-writing tool (Write/write/create)
//   else    a short text answer
// A request whose last message is a tool result gets a short text answer. Every request is logged
// (path, model, tool names, last user text) to the file named by argv[3], for debugging.
//
//   node mock-model.mjs PORT LOGFILE
import { appendFileSync } from 'node:fs'
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 8765)
const logFile = process.argv[3] ?? '/tmp/mock-model.log'
const BUILD_COMMAND = `node -e "setTimeout(() => console.log('built'), 45000)"`
const LONG_CHUNKS = 180
const LONG_DELAY_MS = 500

function log(obj) {
  try {
    appendFileSync(logFile, JSON.stringify({ t: new Date().toISOString(), ...obj }) + '\n')
  } catch {
    // logging is best effort
  }
}

function textOf(content) {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content
    .map((c) => (c && typeof c.text === 'string' ? c.text : ''))
    .join(' ')
    .trim()
}

/**
 * Text the user typed: the last text block that is not a <system-reminder> (Claude Code), without
 * the tagged context other agents put around it (Copilot's <current_datetime>…).
 */
function userText(content) {
  const blocks = typeof content === 'string' ? [content] : Array.isArray(content) ? content : []
  for (let i = blocks.length - 1; i >= 0; i--) {
    const b = blocks[i]
    const text = typeof b === 'string' ? b : b && typeof b.text === 'string' ? b.text : ''
    if (/^\s*<system-reminder>/.test(text)) continue
    const plain = text.replace(/<([a-z_-]+)>[\s\S]*?<\/\1>/g, ' ').trim()
    if (plain !== '') return plain
  }
  return ''
}

/**
 * The last turn, for both APIs: a tool result, or the user's latest text. The agents may send it
 * followed by user messages that hold only tagged context, or by a `system` message (Claude Code).
 */
function lastTurn(messages) {
  const list = (Array.isArray(messages) ? messages : []).filter((m) => m && m.role !== 'system')
  const last = list[list.length - 1]
  if (!last) return { toolResult: false, text: '' }
  if (last.role === 'tool') return { toolResult: true, text: '' }
  // A tool result, unless the user's text follows it (a prompt sent after an interrupted tool).
  if (Array.isArray(last.content) && last.content.at(-1)?.type === 'tool_result')
    return { toolResult: true, text: '' }
  for (let i = list.length - 1; i >= 0 && list[i].role === 'user'; i--) {
    const text = userText(list[i].content)
    if (text !== '') return { toolResult: false, text }
  }
  return { toolResult: false, text: '' }
}

function toolNames(tools) {
  if (!Array.isArray(tools)) return []
  return tools.map((t) => t?.name ?? t?.function?.name).filter((n) => typeof n === 'string')
}

const pick = (names, re) => names.find((n) => re.test(n))

/** What to answer: {kind:'text', text} | {kind:'tool', name, input} | {kind:'long'}. */
function plan(body, messages) {
  const names = toolNames(body.tools)
  const turn = lastTurn(messages)
  if (turn.toolResult) return { kind: 'text', text: 'Done. The tool finished.' }
  const text = turn.text.toLowerCase()
  // The agents' side requests (titles, summaries) offer no tools: they only get text.
  if (names.length === 0) return { kind: 'text', text: 'Recording session' }
  const shell = pick(names, /^(bash|shell|run_in_terminal|powershell)$/i)
  if (/\blong\b/.test(text)) return { kind: 'long' }
  if (/\bslow\b/.test(text) && shell)
    return {
      kind: 'tool',
      name: shell,
      // Not a plain `sleep`: Claude Code refuses a standalone sleep without running it.
      input: { command: BUILD_COMMAND, description: 'Build the project' },
    }
  if (/\brun\b/.test(text) && shell)
    return {
      kind: 'tool',
      name: shell,
      // In the workspace: opencode asks first about any path outside it.
      input: {
        command: 'touch recorded-by-mock && ls',
        description: 'Create a marker file',
      },
    }
  const ask = pick(names, /^(AskUserQuestion|question|ask_user|ask)$/i)
  if (/\bask\b/.test(text) && ask) return { kind: 'tool', name: ask, input: questionInput(ask) }
  const write = pick(names, /^(Write|write|create|create_file)$/i)
  if (/\bedit\b/.test(text) && write)
    return {
      kind: 'tool',
      name: write,
      input: writeInput(write),
    }
  return { kind: 'text', text: 'Hello! I am a scripted model. What should I do next?' }
}

/** Each agent's file-writing tool takes its own parameter names (and refuses others). */
function writeInput(name) {
  const path = '/workspace/notes.txt'
  const content = 'recorded\n'
  if (name === 'Write') return { file_path: path, content }
  if (name === 'write') return { filePath: path, content }
  return { path, file_text: content }
}

function questionInput(name) {
  if (name === 'AskUserQuestion')
    return {
      questions: [
        {
          question: 'Which database should the project use?',
          header: 'Database',
          multiSelect: false,
          options: [
            { label: 'PostgreSQL', description: 'A relational database' },
            { label: 'SQLite', description: 'A file-based database' },
          ],
        },
      ],
    }
  if (name === 'question')
    return {
      questions: [
        {
          question: 'Which database should the project use?',
          header: 'Database',
          options: [
            { label: 'PostgreSQL', description: 'A relational database' },
            { label: 'SQLite', description: 'A file-based database' },
          ],
        },
      ],
    }
  // Copilot CLI's structured form (MCP elicitation: a message and a JSON schema).
  return {
    message: 'Which database should the project use?',
    requestedSchema: {
      type: 'object',
      properties: {
        database: { type: 'string', title: 'Database', enum: ['PostgreSQL', 'SQLite'] },
      },
      required: ['database'],
    },
  }
}

const LOREM =
  'Working through the request step by step, checking each file and noting what changes. '

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---------------------------------------------------------------- Anthropic Messages API
async function anthropic(req, res, body) {
  const p = plan(body, body.messages)
  if (process.env.MOCK_DEBUG) log({ raw: JSON.stringify(body.messages).slice(-1500) })
  log({
    api: 'anthropic',
    model: body.model,
    stream: !!body.stream,
    tools: toolNames(body.tools),
    last: lastTurn(body.messages),
    plan: p.kind,
    tool: p.name,
  })
  const id = `msg_${Date.now().toString(36)}`
  const usage = {
    input_tokens: 12,
    output_tokens: 8,
    cache_read_input_tokens: 0,
    cache_creation_input_tokens: 0,
  }
  const block =
    p.kind === 'tool'
      ? { type: 'tool_use', id: `toolu_${Date.now().toString(36)}`, name: p.name, input: p.input }
      : { type: 'text', text: p.kind === 'long' ? LOREM.repeat(LONG_CHUNKS) : p.text }
  const stop = p.kind === 'tool' ? 'tool_use' : 'end_turn'
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        id,
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: [block],
        stop_reason: stop,
        stop_sequence: null,
        usage,
      }),
    )
    return
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  const send = (event, data) =>
    res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`)
  send('message_start', {
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model: body.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage,
    },
  })
  if (block.type === 'tool_use') {
    send('content_block_start', { index: 0, content_block: { ...block, input: {} } })
    send('content_block_delta', {
      index: 0,
      delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
    })
  } else {
    send('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })
    if (p.kind === 'long') {
      for (let i = 0; i < LONG_CHUNKS && !res.destroyed; i++) {
        send('content_block_delta', { index: 0, delta: { type: 'text_delta', text: LOREM } })
        await sleep(LONG_DELAY_MS)
      }
    } else
      send('content_block_delta', { index: 0, delta: { type: 'text_delta', text: block.text } })
  }
  send('content_block_stop', { index: 0 })
  send('message_delta', {
    delta: { stop_reason: stop, stop_sequence: null },
    usage: { output_tokens: 20 },
  })
  send('message_stop', {})
  res.end()
}

// ---------------------------------------------------------------- OpenAI Chat Completions API
async function openai(req, res, body) {
  const p = plan(body, body.messages)
  log({
    api: 'openai',
    model: body.model,
    stream: !!body.stream,
    tools: toolNames(body.tools),
    last: lastTurn(body.messages),
    plan: p.kind,
    tool: p.name,
  })
  const id = `chatcmpl-${Date.now().toString(36)}`
  const created = Math.floor(Date.now() / 1000)
  const usage = { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 }
  const call =
    p.kind === 'tool'
      ? {
          id: `call_${Date.now().toString(36)}`,
          type: 'function',
          function: { name: p.name, arguments: JSON.stringify(p.input) },
        }
      : undefined
  const finish = call ? 'tool_calls' : 'stop'
  if (!body.stream) {
    const message = call
      ? { role: 'assistant', content: null, tool_calls: [call] }
      : { role: 'assistant', content: p.kind === 'long' ? LOREM.repeat(LONG_CHUNKS) : p.text }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [{ index: 0, message, finish_reason: finish }],
        usage,
      }),
    )
    return
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  const chunk = (delta, finish_reason = null, extra = {}) =>
    res.write(
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason }], ...extra })}\n\n`,
    )
  chunk({ role: 'assistant', content: '' })
  if (call) chunk({ tool_calls: [{ index: 0, ...call }] })
  else if (p.kind === 'long') {
    for (let i = 0; i < LONG_CHUNKS && !res.destroyed; i++) {
      chunk({ content: LOREM })
      await sleep(LONG_DELAY_MS)
    }
  } else chunk({ content: p.text })
  chunk({}, finish, { usage })
  res.write('data: [DONE]\n\n')
  res.end()
}

function models(res) {
  const data = [
    {
      id: 'mock-model',
      object: 'model',
      created: 0,
      owned_by: 'mock',
      type: 'model',
      display_name: 'Mock Model',
    },
  ]
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(
    JSON.stringify({
      object: 'list',
      data,
      has_more: false,
      first_id: 'mock-model',
      last_id: 'mock-model',
    }),
  )
}

const server = createServer((req, res) => {
  let raw = ''
  req.setEncoding('utf8')
  req.on('data', (d) => (raw += d))
  req.on('end', () => {
    const path = (req.url ?? '').split('?')[0]
    let body = {}
    try {
      body = raw ? JSON.parse(raw) : {}
    } catch {
      body = {}
    }
    const done = (p) =>
      p.catch((err) => {
        log({ error: String(err) })
        if (!res.headersSent) res.writeHead(500)
        res.end()
      })
    if (req.method === 'POST' && path.endsWith('/messages/count_tokens')) {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ input_tokens: 100 }))
    } else if (req.method === 'POST' && path.endsWith('/messages')) done(anthropic(req, res, body))
    else if (req.method === 'POST' && path.endsWith('/chat/completions'))
      done(openai(req, res, body))
    else if (req.method === 'GET' && path.endsWith('/models')) models(res)
    else {
      log({ unknown: `${req.method} ${req.url}` })
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { type: 'not_found_error', message: 'not found' } }))
    }
  })
})
server.listen(port, '127.0.0.1', () => log({ listening: port }))
