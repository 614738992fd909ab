'use strict';
// slm from Node.js through the koffi FFI package (no compiler needed).
//
//   const slm = require('./examples/node');
//   const model = new slm.Model('tests/data/demo/kjv-1m-q8_0.gguf');
//   const s = model.session({ nCtx: 256, nThreads: 1 });
//   const r = s.generate('And the LORD said', { maxTokens: 32, temperature: 0,
//                                               onText: (piece) => process.stdout.write(piece) });
//   s.close(); model.close();
//
// The library is looked for in $SLM_LIBRARY, then in the repository's build/
// (`make` builds build/libslm.so), then by the system's loader. Failures of
// the library throw an SlmError subclass with `status` and the library's
// message.

const fs = require('fs');
const path = require('path');
const koffi = require('koffi');

// ---------------------------------------------------------------------------
// Finding and loading the library
// ---------------------------------------------------------------------------

function libraryNames() {
  if (process.platform === 'win32') return ['slm.dll', 'libslm.dll'];
  if (process.platform === 'darwin') return ['libslm.dylib'];
  return ['libslm.so', 'libslm.so.0'];
}

function findLibrary() {
  if (process.env.SLM_LIBRARY) return process.env.SLM_LIBRARY;
  const dirs = [__dirname, path.join(__dirname, '..', '..', 'build'), path.join(process.cwd(), 'build')];
  for (const d of dirs) {
    for (const n of libraryNames()) {
      const p = path.join(d, n);
      if (fs.existsSync(p)) return p;
    }
  }
  return libraryNames()[0]; // the system's search
}

const libraryPath = findLibrary();

// koffi unloads the library when the process ends. With OpenMP, libgomp's
// idle worker threads are still running then and crash once it is unmapped,
// so on glibc the library is opened once more with RTLD_NODELETE first.
if (process.platform === 'linux') {
  try {
    const libc = koffi.load('libc.so.6');
    const dlopen = libc.func('void *dlopen(const char *file, int mode)');
    dlopen(libraryPath, 0x1000 | 0x0002); // RTLD_NODELETE | RTLD_NOW
  } catch (e) {
    // musl and others: libraries are never unloaded there
  }
}

let lib;
try {
  lib = koffi.load(libraryPath);
} catch (e) {
  throw new Error(`the slm shared library could not be loaded from ${libraryPath} (build it with make, or set ` +
                  `SLM_LIBRARY): ${e.message}`);
}

// ---------------------------------------------------------------------------
// Types (field for field as in slm.h)
// ---------------------------------------------------------------------------

const slm_error = koffi.struct('slm_error', { status: 'int', message: koffi.array('char', 256) });
const LogFn = koffi.proto('void slm_log_fn(void *user, int level, const char *message)');
const TextFn = koffi.proto('int slm_text_fn(void *user, const void *text, size_t len)');

const slm_model_params = koffi.struct('slm_model_params', {
  use_mmap: 'int', vocab_only: 'int', repack: 'int', allocator: 'void *', log: koffi.pointer(LogFn),
  log_user: 'void *', isa: 'int',
});
const slm_model_info = koffi.struct('slm_model_info', {
  arch: 'const char *', name: 'const char *', n_vocab: 'int32_t', n_ctx_train: 'int32_t', n_embd: 'int32_t',
  n_layer: 'int32_t', n_head: 'int32_t', n_head_kv: 'int32_t', n_ff: 'int32_t', head_dim: 'int32_t',
  n_rot: 'int32_t', rope_freq_base: 'float', norm_eps: 'float', n_params: 'uint64_t', weight_bytes: 'uint64_t',
  file_size: 'uint64_t', gguf_version: 'int32_t', n_tensors: 'int32_t', load_ms: 'double',
});
const slm_session_params = koffi.struct('slm_session_params', {
  n_ctx: 'int32_t', n_threads: 'int32_t', n_batch: 'int32_t', kv_type: 'int32_t', logits_all: 'int32_t',
});
const slm_chat_message = koffi.struct('slm_chat_message', { role: 'const char *', content: 'const char *' });
const slm_sampler_params = koffi.struct('slm_sampler_params', {
  temperature: 'float', top_k: 'int32_t', top_p: 'float', min_p: 'float', repeat_penalty: 'float',
  repeat_last_n: 'int32_t', frequency_penalty: 'float', presence_penalty: 'float', seed: 'uint64_t',
  grammar: 'void *', // const slm_grammar * (added with grammars)
});
const slm_generate_params = koffi.struct('slm_generate_params', {
  max_tokens: 'int32_t', stop: 'const char **', n_stop: 'int32_t', add_special: 'int', parse_special: 'int',
  emit_special: 'int', sampler: slm_sampler_params, on_text: koffi.pointer(TextFn), user: 'void *',
  tokens_out: 'int32_t *', tokens_cap: 'int32_t',
});
const slm_embed_params = koffi.struct('slm_embed_params', {
  pooling: 'int32_t', normalize: 'int32_t', add_special: 'int32_t', parse_special: 'int32_t',
});
const slm_generate_result = koffi.struct('slm_generate_result', {
  stop_reason: 'int32_t', n_prompt: 'int32_t', n_generated: 'int32_t', load_ms: 'double', prompt_ms: 'double',
  prompt_tps: 'double', gen_ms: 'double', gen_tps: 'double',
});

// ---------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------

const C = {};
for (const proto of [
  'const char *slm_version(void)',
  'const char *slm_build_info(void)',
  'int slm_isa_available(int isa)',
  'const char *slm_isa_name(int isa)',
  'int slm_isa_from_name(const char *name)',
  'int slm_model_isa(void *model)',
  'const char *slm_status_string(int status)',
  'void slm_model_params_init(void *params)',
  'void slm_session_params_init(void *params)',
  'void slm_sampler_params_init(void *params)',
  'void slm_generate_params_init(void *params)',
  'void slm_model_get_info(void *model, void *out)',
  'int slm_model_load_file(const char *path, const slm_model_params *params, _Out_ void **out, _Out_ slm_error *err)',
  'int slm_model_load_memory(const void *data, size_t size, const slm_model_params *params, _Out_ void **out, _Out_ slm_error *err)',
  'void slm_model_free(void *model)',
  'int64_t slm_meta_find(void *model, const char *key)',
  'int slm_meta_type(void *model, int64_t index)',
  'int slm_meta_get_int(void *model, int64_t index, int64_t elem, _Out_ int64_t *out)',
  'int slm_meta_get_float(void *model, int64_t index, int64_t elem, _Out_ double *out)',
  'int slm_meta_get_string(void *model, int64_t index, int64_t elem, _Out_ void **out, _Out_ size_t *len)',
  'int slm_session_create(void *model, const slm_session_params *params, _Out_ void **out, _Out_ slm_error *err)',
  'void slm_session_free(void *session)',
  'int slm_decode(void *session, const int32_t *tokens, int32_t n, _Out_ slm_error *err)',
  'const float *slm_session_logits(void *session, int32_t i)',
  'int32_t slm_session_pos(void *session)',
  'int32_t slm_session_n_ctx(void *session)',
  'int slm_session_rewind(void *session, int32_t pos)',
  'int32_t slm_token_bos(void *model)',
  'int32_t slm_token_eos(void *model)',
  'int slm_token_is_eog(void *model, int32_t token)',
  'int slm_tokenize(void *model, const void *text, size_t len, int add_special, int parse_special, _Out_ int32_t *out, int32_t max, _Out_ int32_t *n_out, _Out_ slm_error *err)',
  'int slm_detokenize(void *model, const int32_t *tokens, int32_t n, int remove_special, int unparse_special, _Out_ uint8_t *buf, size_t size, _Out_ size_t *len, _Out_ slm_error *err)',
  'int slm_chat_model_family(void *model, _Out_ int *fallback)',
  'int32_t slm_model_pooling(void *model)',
  'int32_t slm_model_n_embd_out(void *model)',
  'int slm_model_is_encoder(void *model)',
  'int32_t slm_pooling_from_name(const char *name)',
  'const char *slm_pooling_name(int32_t pooling)',
  'void slm_embed_params_init(void *params)',
  'int slm_embed(void *session, const char **texts, const size_t *lens, int32_t n_texts, const slm_embed_params *params, _Out_ float *out, size_t cap, _Out_ int32_t *n_rows, _Out_ slm_error *err)',
  'int slm_embed_tokens(void *session, const int32_t *tokens, int32_t n, const slm_embed_params *params, _Out_ float *out, size_t cap, _Out_ slm_error *err)',
  'float slm_cosine(const float *a, const float *b, int32_t n)',
  'int slm_chat_family_from_name(const char *name)',
  'const char *slm_chat_family_name(int family)',
  'int slm_chat_format(void *model, int family, const slm_chat_message *messages, int32_t n, int32_t n_past, int add_generation_prompt, _Out_ uint8_t *buf, size_t size, _Out_ size_t *len, _Out_ int *fallback, _Out_ slm_error *err)',
  'int slm_grammar_create(void *model, const void *text, size_t len, const char *root, _Out_ void **out, _Out_ slm_error *err)',
  'void slm_grammar_free(void *grammar)',
  'const char *slm_grammar_json(void)',
  'int slm_json_schema_to_grammar(const void *schema, size_t schema_len, _Out_ uint8_t *buf, size_t size, _Out_ size_t *len, _Out_ slm_error *err)',
  'int slm_generate(void *session, const void *prompt, size_t prompt_len, const int32_t *prompt_ids, int32_t n_prompt_ids, const slm_generate_params *params, _Out_ slm_generate_result *result, _Out_ slm_error *err)',
]) {
  const name = proto.match(/(slm_\w+)\(/)[1];
  C[name] = lib.func(proto);
}
// the same call with a raw result buffer, for the layout check
const generateRaw = lib.func('slm_generate', 'int', ['void *', 'void *', 'size_t', 'void *', 'int32_t', 'void *', 'void *', 'void *']);

// ---------------------------------------------------------------------------
// Layout check: every *_init (and slm_model_get_info, slm_generate's result)
// starts with memset(p, 0, sizeof *p), so writing into a buffer filled with a
// marker shows the C sizeof; the defaults then show each field in its place.
// ---------------------------------------------------------------------------

function writtenExtent(fill) {
  const buf = Buffer.alloc(1024, 0xa5);
  fill(buf);
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0xa5) end--;
  return [end, buf];
}

// `override` maps a struct name to another declaration to check instead
// (the tests use it to see that a wrong layout is caught).
function checkLayouts(override = {}) {
  const problems = [];
  const near = (a, b) => Math.abs(a - b) < 1e-6;
  function check(type, name, fill, expect) {
    type = override[name] || type;
    const [end, buf] = writtenExtent(fill);
    if (end !== koffi.sizeof(type)) {
      problems.push(`${name}: the library writes ${end} bytes, the binding declares ${koffi.sizeof(type)}`);
      return;
    }
    const v = koffi.decode(buf, type);
    for (const [field, want] of Object.entries(expect)) {
      let got = v;
      for (const part of field.split('.')) got = got[part];
      if (typeof got === 'bigint') got = Number(got);
      const ok = want === null ? !got : (typeof want === 'number' ? near(got, want) : got === want);
      if (!ok) problems.push(`${name}.${field}: ${got} where the library's default is ${want}`);
    }
  }
  const sampler = { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, repeat_penalty: 1, repeat_last_n: 64,
                    frequency_penalty: 0, presence_penalty: 0, seed: 0, grammar: null };
  check(slm_model_params, 'slm_model_params', C.slm_model_params_init,
        { use_mmap: 1, vocab_only: 0, repack: 1, allocator: null, log: null, log_user: null, isa: 0 });
  check(slm_session_params, 'slm_session_params', C.slm_session_params_init,
        { n_ctx: 0, n_threads: 0, n_batch: 0, kv_type: 1, logits_all: 0 });
  check(slm_sampler_params, 'slm_sampler_params', C.slm_sampler_params_init, sampler);
  const gen = { max_tokens: 256, stop: null, n_stop: 0, add_special: 1, parse_special: 0, emit_special: 0,
                on_text: null, user: null, tokens_out: null, tokens_cap: 0 };
  for (const [k, v] of Object.entries(sampler)) gen['sampler.' + k] = v;
  check(slm_generate_params, 'slm_generate_params', C.slm_generate_params_init, gen);
  check(slm_model_info, 'slm_model_info', (b) => C.slm_model_get_info(null, b), { n_vocab: 0 });
  check(slm_embed_params, 'slm_embed_params', C.slm_embed_params_init,
        { pooling: -1, normalize: 0, add_special: 1, parse_special: 1 });
  check(slm_generate_result, 'slm_generate_result', (b) => generateRaw(null, null, 0, null, 0, null, b, null),
        { stop_reason: 0 });
  return problems;
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

class SlmError extends Error {
  constructor(message, status) {
    super(message);
    this.name = this.constructor.name;
    this.status = status;
  }
}
class InvalidArgumentError extends SlmError {}
class SlmIOError extends SlmError {}
class FormatError extends SlmError {}
class UnsupportedError extends SlmError {}
class OutOfMemoryError extends SlmError {}
class ContextFullError extends SlmError {}
class NotFoundError extends SlmError {}
class MetadataTypeError extends SlmError {}
class BufferTooSmallError extends SlmError {}
const ERRORS = {
  '-1': InvalidArgumentError, '-2': SlmIOError, '-3': FormatError, '-4': UnsupportedError, '-5': OutOfMemoryError,
  '-6': ContextFullError, '-7': NotFoundError, '-8': MetadataTypeError, '-9': BufferTooSmallError,
};

function check(status, err) {
  if (status === 0) return;
  const msg = (err && err.message) || C.slm_status_string(status) || `status ${status}`;
  const Cls = ERRORS[String(status)] || SlmError;
  throw new Cls(msg, status);
}

const layoutProblems = checkLayouts();
if (layoutProblems.length) {
  throw new SlmError(`the slm library at ${libraryPath} does not match this binding's structs: ` +
                     layoutProblems.join('; '));
}

// ---------------------------------------------------------------------------
// Model, Session
// ---------------------------------------------------------------------------

const STOP = ['none', 'eog', 'max_tokens', 'stop_string', 'callback', 'context_full', 'grammar'];
const KV_TYPES = { f32: 0, f16: 1, q8_0: 8 };

/** Throw on an option name the call does not know (a typo must not be ignored silently). */
function checkOptions(what, options, known) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new InvalidArgumentError(`${what}: options must be an object`, -1);
  for (const k of Object.keys(options))
    if (!known.includes(k))
      throw new InvalidArgumentError(`${what}: unknown option '${k}' (known: ${known.join(', ')})`, -1);
  return options;
}

const GENERATE_OPTIONS = ['maxTokens', 'stop', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN',
                          'frequencyPenalty', 'presencePenalty', 'seed', 'addSpecial', 'parseSpecial', 'emitSpecial',
                          'onText', 'promptIds', 'signal', 'grammar'];

function defaults(init, type) {
  const buf = Buffer.alloc(koffi.sizeof(type));
  init(buf);
  return koffi.decode(buf, type);
}

function familyOf(template) {
  if (template === undefined || template === null || template === 'auto') return 0;
  if (typeof template === 'number') return template;
  const f = C.slm_chat_family_from_name(String(template));
  if (!f) throw new InvalidArgumentError(`unknown chat template '${template}'`, -1);
  return f;
}

/** Format messages ({role, content}) as prompt text; model may be null with a named template. */
function chatFormat(messages, options = {}) {
  const { addGenerationPrompt = true, template, nPast = 0, model = null } =
    checkOptions('chatFormat', options, ['addGenerationPrompt', 'template', 'nPast', 'model']);
  const fam = familyOf(template);
  const msgs = messages.map((m, i) => {
    if (!m || typeof m.role !== 'string' || typeof m.content !== 'string')
      throw new InvalidArgumentError(`message ${i}: an object with string role and content is needed`, -1);
    return { role: m.role, content: m.content };
  });
  const h = model ? model._h() : null;
  const err = {}, len = [0], fb = [0];
  let st = C.slm_chat_format(h, fam, msgs, msgs.length, nPast, addGenerationPrompt ? 1 : 0, null, 0, len, fb, err);
  if (st !== 0 && st !== -9) check(st, err);
  const buf = Buffer.alloc(Number(len[0]) + 1);
  st = C.slm_chat_format(h, fam, msgs, msgs.length, nPast, addGenerationPrompt ? 1 : 0, buf, buf.length, len, fb,
                         err);
  check(st, err);
  return buf.subarray(0, Number(len[0])).toString('utf8');
}

// ---------------------------------------------------------------------------
// Grammars (structured output)
// ---------------------------------------------------------------------------

/** GBNF text for a JSON Schema (an object, or its JSON text); unsupported keywords throw UnsupportedError. */
function jsonSchemaToGrammar(schema) {
  const text = Buffer.from(typeof schema === 'string' ? schema : JSON.stringify(schema), 'utf8');
  const len = [0], err = {};
  let st = C.slm_json_schema_to_grammar(text, text.length, null, 0, len, err);
  if (st !== -9) check(st, err);
  const buf = Buffer.alloc(Number(len[0]) + 1);
  check(C.slm_json_schema_to_grammar(text, text.length, buf, buf.length, len, err), err);
  return buf.subarray(0, Number(len[0])).toString('utf8');
}

/** A GBNF grammar compiled for a model's vocabulary; pass it as options.grammar to generate(). */
class Grammar {
  constructor(model, text, { root = null } = {}) {
    const data = Buffer.from(String(text), 'utf8');
    const out = [null], err = {};
    check(C.slm_grammar_create(model._h(), data, data.length, root, out, err), err);
    this._handle = out[0];
    this.model = model;
    this.text = String(text);
  }

  /** The built-in JSON grammar (a JSON object). */
  static json(model) { return new Grammar(model, C.slm_grammar_json()); }

  /** A JSON Schema's grammar. */
  static fromSchema(model, schema) { return new Grammar(model, jsonSchemaToGrammar(schema)); }

  _h() {
    if (!this._handle) throw new InvalidArgumentError('the grammar is closed', -1);
    return this._handle;
  }

  close() {
    if (!this._handle) return;
    C.slm_grammar_free(this._handle);
    this._handle = null;
  }
}

class Model {
  /** Load a GGUF file. options: { useMmap = true, vocabOnly = false, isa }
      (isa: 'avx2', 'scalar', ...; default: the best this CPU supports) */
  constructor(file, options = {}) {
    const { useMmap = true, vocabOnly = false, isa = 'best' } = checkOptions('Model', options, ['useMmap', 'vocabOnly', 'isa']);
    const p = defaults(C.slm_model_params_init, slm_model_params);
    p.use_mmap = useMmap ? 1 : 0;
    p.vocab_only = vocabOnly ? 1 : 0;
    p.isa = C.slm_isa_from_name(String(isa));
    if (p.isa < 0) throw new RangeError(`isa: unknown instruction set '${isa}'`);
    const out = [null], err = {};
    check(C.slm_model_load_file(String(file), p, out, err), err);
    this._handle = out[0];
    this._sessions = new Set();
    this.path = String(file);
  }

  /** Load from a Buffer (kept referenced: the weights are used in place). */
  static fromBuffer(buffer, options = {}) {
    const { vocabOnly = false } = checkOptions('Model.fromBuffer', options, ['vocabOnly']);
    const self = Object.create(Model.prototype);
    const p = defaults(C.slm_model_params_init, slm_model_params);
    p.use_mmap = 0;
    p.repack = 0;
    p.vocab_only = vocabOnly ? 1 : 0;
    const out = [null], err = {};
    check(C.slm_model_load_memory(buffer, buffer.length, p, out, err), err);
    self._handle = out[0];
    self._buffer = buffer;
    self._sessions = new Set();
    self.path = null;
    return self;
  }

  _h() {
    if (!this._handle) throw new InvalidArgumentError('the model is closed', -1);
    return this._handle;
  }

  /** Free the model and its sessions. */
  close() {
    if (!this._handle) return;
    for (const s of this._sessions) s.close();
    if ([...this._sessions].some((s) => s._busy)) {
      this._closeAfter = true; // freed when the last asynchronous generation ends
      return;
    }
    C.slm_model_free(this._handle);
    this._handle = null;
    this._buffer = null;
  }

  /** The instruction set whose kernels the model runs with ('avx2', ...). */
  get isa() { return C.slm_isa_name(C.slm_model_isa(this._h())); }

  get info() {
    const buf = Buffer.alloc(koffi.sizeof(slm_model_info));
    C.slm_model_get_info(this._h(), buf);
    const i = koffi.decode(buf, slm_model_info);
    for (const k of ['n_params', 'weight_bytes', 'file_size']) i[k] = Number(i[k]);
    return i;
  }

  /** A scalar metadata value (number, boolean or string), or undefined. */
  meta(key) {
    const h = this._h();
    const i = C.slm_meta_find(h, key);
    if (i < 0) return undefined;
    const t = C.slm_meta_type(h, i);
    if (t === 8) {
      const p = [null], n = [0];
      check(C.slm_meta_get_string(h, i, -1, p, n));
      return Buffer.from(koffi.view(p[0], Number(n[0]))).toString('utf8');
    }
    if (t === 6 || t === 12) {
      const d = [0];
      check(C.slm_meta_get_float(h, i, -1, d));
      return d[0];
    }
    if (t === 9) return undefined; // arrays: not wrapped here (see the Python binding)
    const v = [0];
    check(C.slm_meta_get_int(h, i, -1, v));
    return t === 7 ? Boolean(v[0]) : Number(v[0]);
  }

  get bos() { const t = C.slm_token_bos(this._h()); return t < 0 ? null : t; }
  get eos() { const t = C.slm_token_eos(this._h()); return t < 0 ? null : t; }
  isEog(token) { return C.slm_token_is_eog(this._h(), token) !== 0; }

  /** Text -> token ids. options: { addSpecial = true, parseSpecial = false } */
  tokenize(text, options = {}) {
    const { addSpecial = true, parseSpecial = false } = checkOptions('tokenize', options, ['addSpecial', 'parseSpecial']);
    const data = Buffer.from(text, 'utf8');
    let cap = data.length + 8;
    let out = new Int32Array(cap);
    const n = [0], err = {};
    let st = C.slm_tokenize(this._h(), data, data.length, addSpecial ? 1 : 0, parseSpecial ? 1 : 0, out, cap, n, err);
    if (st === -9) {
      cap = n[0];
      out = new Int32Array(cap);
      st = C.slm_tokenize(this._h(), data, data.length, addSpecial ? 1 : 0, parseSpecial ? 1 : 0, out, cap, n, err);
    }
    check(st, err);
    return Array.from(out.subarray(0, n[0]));
  }

  /** Token ids -> text. options: { removeSpecial = false, unparseSpecial = false } */
  detokenize(ids, options = {}) {
    const { removeSpecial = false, unparseSpecial = false } =
      checkOptions('detokenize', options, ['removeSpecial', 'unparseSpecial']);
    const arr = Int32Array.from(ids);
    const len = [0], err = {};
    let buf = Buffer.alloc(16 * arr.length + 16);
    let st = C.slm_detokenize(this._h(), arr, arr.length, removeSpecial ? 1 : 0, unparseSpecial ? 1 : 0, buf,
                              buf.length, len, err);
    if (st === -9) {
      buf = Buffer.alloc(Number(len[0]) + 1);
      st = C.slm_detokenize(this._h(), arr, arr.length, removeSpecial ? 1 : 0, unparseSpecial ? 1 : 0, buf,
                            buf.length, len, err);
    }
    check(st, err);
    return buf.subarray(0, Number(len[0])).toString('utf8');
  }

  /** { family, fallback }: the model's chat template family (ChatML with fallback true if none is known). */
  chatFamily() {
    const fb = [0];
    const fam = C.slm_chat_model_family(this._h(), fb);
    return { family: C.slm_chat_family_name(fam), fallback: fb[0] !== 0 };
  }

  chatFormat(messages, options = {}) {
    return chatFormat(messages, Object.assign({}, options, { model: this }));
  }

  /** options: { nCtx = 0, nThreads = 0, nBatch = 0, kvType = 'f16', logitsAll = false } */
  session(options = {}) {
    return new Session(this, options);
  }

  // -- embeddings --
  /** The pooling of the file: 'none', 'mean', 'cls' or 'last'. */
  get pooling() { return C.slm_pooling_name(C.slm_model_pooling(this._h())); }
  /** Floats per embedding vector. */
  get nEmbdOut() { return C.slm_model_n_embd_out(this._h()); }
  /** true for encoders (bert, nomic-bert, gemma-embedding): they embed only. */
  get isEncoder() { return C.slm_model_is_encoder(this._h()) !== 0; }

  /** Embed in a fresh session (options as Session.embed plus nCtx, nThreads, kvType). */
  embed(texts, options = {}) {
    const s = this.session({ nCtx: options.nCtx || 0, nThreads: options.nThreads || 0, kvType: options.kvType || 'f16' });
    try { return s.embed(texts, options); } finally { s.close(); }
  }
}

function embedParams(o) {
  const p = defaults(C.slm_embed_params_init, slm_embed_params);
  if (o.pooling !== undefined && o.pooling !== null) {
    const code = typeof o.pooling === 'number' ? o.pooling : C.slm_pooling_from_name(String(o.pooling));
    if (code < 0 || code > 3) throw new InvalidArgumentError('pooling: one of none, mean, cls, last', -1);
    p.pooling = code;
  }
  if (o.normalize !== undefined) p.normalize = o.normalize ? 1 : 0;
  if (o.addSpecial !== undefined) p.add_special = o.addSpecial ? 1 : 0;
  if (o.parseSpecial !== undefined) p.parse_special = o.parseSpecial ? 1 : 0;
  return p;
}

/** Cosine similarity of two vectors (arrays or Float32Arrays), as llama.cpp computes it. */
function cosine(a, b) {
  if (a.length !== b.length) throw new InvalidArgumentError(`cosine: lengths ${a.length} and ${b.length} differ`, -1);
  return C.slm_cosine(Float32Array.from(a), Float32Array.from(b), a.length);
}

class Session {
  constructor(model, options = {}) {
    const { nCtx = 0, nThreads = 0, nBatch = 0, kvType = 'f16', logitsAll = false } =
      checkOptions('session', options, ['nCtx', 'nThreads', 'nBatch', 'kvType', 'logitsAll']);
    for (const [k, v] of Object.entries({ nCtx, nThreads, nBatch }))
      if (!Number.isInteger(v) || v < 0 || v > 2147483647)
        throw new InvalidArgumentError(`session: ${k} must be an integer from 0 (the default) to 2147483647`, -1);
    const p = defaults(C.slm_session_params_init, slm_session_params);
    p.n_ctx = nCtx;
    p.n_threads = nThreads;
    p.n_batch = nBatch;
    if (!(kvType in KV_TYPES)) throw new InvalidArgumentError(`kvType: one of ${Object.keys(KV_TYPES)}`, -1);
    p.kv_type = KV_TYPES[kvType];
    p.logits_all = logitsAll ? 1 : 0;
    const out = [null], err = {};
    check(C.slm_session_create(model._h(), p, out, err), err);
    this._handle = out[0];
    this.model = model;
    this._nVocab = model.info.n_vocab;
    model._sessions.add(this);
  }

  _h() {
    if (!this._handle) throw new InvalidArgumentError('the session is closed', -1);
    if (this._busy) throw new SlmError('the session is busy: an asynchronous generation is running', -1);
    return this._handle;
  }

  close() {
    if (!this._handle) return;
    if (this._busy) {
      // a generation runs on a worker thread: stop it, free when it ends
      this._busy.stop = true;
      this._busy.closeAfter = true;
      return;
    }
    C.slm_session_free(this._handle);
    this._handle = null;
    this.model._sessions.delete(this);
  }

  get pos() { return C.slm_session_pos(this._h()); }
  get nCtx() { return C.slm_session_n_ctx(this._h()); }

  rewind(pos = 0) { check(C.slm_session_rewind(this._h(), pos)); }

  decode(ids) {
    const err = {};
    const arr = Int32Array.from(ids);
    check(C.slm_decode(this._h(), arr, arr.length, err), err);
  }

  /** The logits of token i of the last decode (-1: the last) as a Float32Array (a copy). */
  logits(i = -1) {
    const p = C.slm_session_logits(this._h(), i);
    if (!p) throw new InvalidArgumentError(`no logits for token ${i}`, -1);
    return Float32Array.from(koffi.decode(p, 'float', this._nVocab));
  }

  /**
   * Append a prompt (text, or ids with options.promptIds) and generate.
   * options: maxTokens (256; <= 0 until EOG), stop (string or array), temperature, topK, topP, minP,
   * repeatPenalty, repeatLastN, frequencyPenalty, presencePenalty, seed, addSpecial (true),
   * parseSpecial (false), emitSpecial (false), onText(piece) (return true to stop), grammar (a Grammar:
   * the output follows it; generation also stops, stop 'grammar', when it is complete and allows nothing more).
   * Returns { text, tokens, stopReason, stop, nPrompt, nGenerated, promptMs, promptTps, genMs, genTps }.
   */
  generate(prompt = '', options = {}) {
    const h = this._h();
    const job = this._prepare(prompt, options);
    let st;
    try {
      st = C.slm_generate(h, job.data, job.len, job.ids, job.nIds, job.gp, job.res, job.err);
    } finally {
      koffi.unregister(job.cb);
    }
    return job.finish(st);
  }

  /**
   * The same without blocking the event loop: slm_generate runs on a worker
   * thread (koffi's asynchronous call) and each piece of text reaches
   * options.onText on the main thread. Resolves to the result of generate.
   * options.signal (an AbortSignal) stops generation (stop 'callback').
   * The session cannot be used otherwise until the promise settles.
   */
  generateAsync(prompt = '', options = {}) {
    let h, job;
    try {
      h = this._h();
      job = this._prepare(prompt, options);
    } catch (e) {
      return Promise.reject(e);
    }
    const busy = { stop: false, closeAfter: false };
    job.busy = busy;
    this._busy = busy;
    const sig = options.signal;
    const onAbort = () => { busy.stop = true; };
    if (sig) {
      if (sig.aborted) busy.stop = true;
      else sig.addEventListener('abort', onAbort);
    }
    return new Promise((resolve, reject) => {
      C.slm_generate.async(h, job.data, job.len, job.ids, job.nIds, job.gp, job.res, job.err, (e, st) => {
        koffi.unregister(job.cb);
        if (sig) sig.removeEventListener('abort', onAbort);
        this._busy = null;
        if (busy.closeAfter) this.close();
        if (this.model._closeAfter) this.model.close();
        if (e) return reject(e);
        try {
          resolve(job.finish(st));
        } catch (x) {
          reject(x);
        }
      });
    });
  }

  /**
   * An async iterator of the text pieces: for await (const piece of s.stream(...)).
   * Breaking out of the loop stops generation; iterator.result holds the
   * result after the end. The event loop keeps running meanwhile.
   */
  stream(prompt = '', options = {}) {
    checkOptions('stream', options, GENERATE_OPTIONS);
    if (options.onText) throw new InvalidArgumentError('stream: onText is not an option here (iterate instead)', -1);
    const queue = [];
    let wake = null, done = false, failure = null, stopped = false;
    const it = {
      result: null,
      [Symbol.asyncIterator]() { return it; },
      next: async () => {
        while (!queue.length && !done) await new Promise((r) => { wake = r; });
        if (queue.length) return { value: queue.shift(), done: false };
        if (failure) {
          const f = failure;
          failure = null;
          throw f;
        }
        return { value: undefined, done: true };
      },
      return: async () => {
        stopped = true;
        while (!done) await new Promise((r) => { wake = r; });
        return { value: undefined, done: true };
      },
    };
    const opts = Object.assign({}, options, { onText: (piece) => {
      if (stopped) return true;
      queue.push(piece);
      if (wake) { const w = wake; wake = null; w(); }
      return false;
    } });
    this.generateAsync(prompt, opts).then((r) => { it.result = r; }, (e) => { failure = e; }).finally(() => {
      done = true;
      if (wake) { const w = wake; wake = null; w(); }
    });
    return it;
  }

  /** Everything a generate call needs, checked; finish(status) makes its result. */
  _prepare(prompt, options) {
    const h = this._handle;
    const o = checkOptions('generate', options, GENERATE_OPTIONS);
    const gp = defaults(C.slm_generate_params_init, slm_generate_params);
    if (o.maxTokens !== undefined) gp.max_tokens = o.maxTokens;
    if (o.addSpecial !== undefined) gp.add_special = o.addSpecial ? 1 : 0;
    if (o.parseSpecial !== undefined) gp.parse_special = o.parseSpecial ? 1 : 0;
    if (o.emitSpecial !== undefined) gp.emit_special = o.emitSpecial ? 1 : 0;
    const names = { temperature: 'temperature', topK: 'top_k', topP: 'top_p', minP: 'min_p',
                    repeatPenalty: 'repeat_penalty', repeatLastN: 'repeat_last_n',
                    frequencyPenalty: 'frequency_penalty', presencePenalty: 'presence_penalty', seed: 'seed' };
    for (const [js, c] of Object.entries(names)) if (o[js] !== undefined) gp.sampler[c] = o[js];
    if (o.grammar !== undefined && o.grammar !== null) {
      if (!(o.grammar instanceof Grammar)) throw new InvalidArgumentError('grammar must be a Grammar', -1);
      gp.sampler.grammar = o.grammar._h();
    }
    if (o.stop) {
      const stops = Array.isArray(o.stop) ? o.stop : [o.stop];
      gp.stop = stops.concat([null]);
      gp.n_stop = stops.length;
    }
    const cap = gp.max_tokens > 0 ? gp.max_tokens : C.slm_session_n_ctx(h);
    const ids = new Int32Array(Math.max(cap, 1));
    gp.tokens_out = ids;
    gp.tokens_cap = cap;
    const chunks = [];
    let thrown = null;
    const job = { busy: null };
    job.cb = koffi.register((user, text, len) => {
      try {
        if (job.busy && job.busy.stop) return 1;
        const piece = Buffer.from(koffi.view(text, Number(len))).toString('utf8');
        chunks.push(piece);
        return o.onText && o.onText(piece) ? 1 : 0;
      } catch (e) {
        thrown = e;
        return 1;
      }
    }, koffi.pointer(TextFn));
    gp.on_text = job.cb;
    job.gp = gp;
    job.res = {};
    job.err = {};
    if (o.promptIds) {
      job.data = null;
      job.len = 0;
      job.ids = Int32Array.from(o.promptIds);
      job.nIds = job.ids.length;
    } else {
      job.data = Buffer.from(prompt, 'utf8');
      job.len = job.data.length;
      job.ids = null;
      job.nIds = 0;
    }
    job.finish = (st) => {
      if (thrown) throw thrown;
      check(st, job.err);
      const res = job.res;
      return {
        text: chunks.join(''), tokens: Array.from(ids.subarray(0, Math.min(res.n_generated, cap))),
        stopReason: res.stop_reason, stop: STOP[res.stop_reason], nPrompt: res.n_prompt, nGenerated: res.n_generated,
        promptMs: res.prompt_ms, promptTps: res.prompt_tps, genMs: res.gen_ms, genTps: res.gen_tps,
      };
    };
    return job;
  }

  /**
   * Embedding vectors of a text or of an array of texts, each its own sequence, reusing this session.
   * options: { pooling (the model's; 'none', 'mean', 'cls', 'last'), normalize = false, addSpecial = true,
   * parseSpecial = true }. A Float32Array per text (pooling 'none': an array of per-token Float32Arrays);
   * a single text gives one result, an array an array.
   */
  embed(texts, options = {}) {
    const single = !Array.isArray(texts);
    const items = single ? [texts] : texts;
    const p = embedParams(options);
    const dim = C.slm_model_n_embd_out(this.model._h());
    const pool = p.pooling >= 0 ? p.pooling : C.slm_model_pooling(this.model._h());
    const rowsMax = pool === 0 ? this.nCtx : 1;
    const buf = new Float32Array(rowsMax * dim);
    const out = [];
    for (const t of items) {
      if (typeof t !== 'string') throw new InvalidArgumentError('embed: texts must be strings', -1);
      const rows = [0], err = {};
      if (t.includes('\0')) throw new InvalidArgumentError('embed: a text holds a NUL character', -1);
      check(C.slm_embed(this._h(), [t], null, 1, p, buf, buf.length, rows, err), err);
      if (pool === 0) {
        const r = [];
        for (let i = 0; i < rows[0]; i++) r.push(buf.slice(i * dim, (i + 1) * dim));
        out.push(r);
      } else {
        out.push(buf.slice(0, dim));
      }
    }
    return single ? out[0] : out;
  }

  /** Embedding of one sequence of token ids (used as given); options as embed. */
  embedTokens(ids, options = {}) {
    const p = embedParams(options);
    const arr = Int32Array.from(ids);
    const dim = C.slm_model_n_embd_out(this.model._h());
    const pool = p.pooling >= 0 ? p.pooling : C.slm_model_pooling(this.model._h());
    const rows = pool === 0 ? arr.length : 1;
    const buf = new Float32Array(Math.max(rows * dim, 1)), err = {};
    check(C.slm_embed_tokens(this._h(), arr, arr.length, p, buf, buf.length, err), err);
    if (pool !== 0) return buf.slice(0, dim);
    const r = [];
    for (let i = 0; i < rows; i++) r.push(buf.slice(i * dim, (i + 1) * dim));
    return r;
  }

  /** Format a conversation with the model's chat template, start over and generate the reply. */
  chat(messages, options = {}) {
    const { template, ...rest } = options;
    const text = chatFormat(messages, { template, model: this.model });
    this.rewind(0);
    return this.generate(text, Object.assign({ parseSpecial: true }, rest));
  }
}

module.exports = {
  Model, Session, Grammar, jsonSchemaToGrammar, jsonGrammar: () => C.slm_grammar_json(), chatFormat, cosine, SlmError, InvalidArgumentError, SlmIOError, FormatError, UnsupportedError,
  OutOfMemoryError, ContextFullError, NotFoundError, MetadataTypeError, BufferTooSmallError,
  version: () => C.slm_version(), buildInfo: () => C.slm_build_info(), libraryPath,
  checkLayouts, _internal: { koffi, structs: { slm_generate_params, slm_sampler_params, slm_model_info } },
};
