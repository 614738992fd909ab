#!/usr/bin/env python3
"""Generate text with slm from Python, streaming it to stdout.

    python3 examples/python/generate.py -m tests/data/demo/kjv-1m-q8_0.gguf \\
        -p "And the LORD said" -n 48 --temp 0

With --chat the prompt is a user message, formatted with the model's chat
template (or --template NAME), optionally after a system message (-s).
Needs the shared library: `make` builds build/libslm.so (or set SLM_LIBRARY).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import slm  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate text with slm (streams to stdout).")
    ap.add_argument("-m", "--model", required=True, help="GGUF model file")
    ap.add_argument("-p", "--prompt", default="", help="prompt text (or the user message with --chat)")
    ap.add_argument("-n", "--max-tokens", type=int, default=128, help="tokens to generate (<= 0: until the end)")
    ap.add_argument("-c", "--ctx", type=int, default=0, help="context length (0: the model's, at most 4096)")
    ap.add_argument("-t", "--threads", type=int, default=0, help="threads (0: all)")
    ap.add_argument("--temp", type=float, default=0.8, help="temperature (0: greedy)")
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--min-p", type=float, default=0.05)
    ap.add_argument("--repeat-penalty", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    ap.add_argument("--chat", action="store_true", help="format the prompt as a chat turn")
    ap.add_argument("-s", "--system", help="system message (with --chat)")
    ap.add_argument("--template", help="chat template family (chatml, llama3, gemma, phi3, ...)")
    ap.add_argument("-v", "--verbose", action="store_true", help="model info and speed on stderr")
    a = ap.parse_args(argv)

    try:
        with slm.Model(a.model) as model:
            if a.verbose:
                i = model.info
                sys.stderr.write("%s: %s %r, %d layers, %d params, loaded in %.1f ms (%s)\n"
                                 % (os.path.basename(sys.argv[0]), i.arch, i.name, i.n_layer, i.n_params, i.load_ms,
                                    slm.build_info()))
            with model.session(n_ctx=a.ctx, n_threads=a.threads) as s:
                opts = dict(max_tokens=a.max_tokens, stop=a.stop or None, temperature=a.temp, top_k=a.top_k,
                            top_p=a.top_p, min_p=a.min_p, repeat_penalty=a.repeat_penalty, seed=a.seed)
                if a.chat:
                    msgs = ([{"role": "system", "content": a.system}] if a.system else []) + \
                           [{"role": "user", "content": a.prompt}]
                    stream = s.chat(msgs, template=a.template, stream=True, **opts)
                else:
                    sys.stdout.write(a.prompt)
                    stream = s.stream(a.prompt, **opts)
                with stream:
                    for piece in stream:
                        sys.stdout.write(piece)
                        sys.stdout.flush()
                sys.stdout.write("\n")
                r = stream.result
                if a.verbose and r is not None:
                    sys.stderr.write("prompt %d tokens (%.1f tok/s), generated %d (%.1f tok/s), stop: %s\n"
                                     % (r.n_prompt, r.prompt_tps, r.n_generated, r.gen_tps, r.stop))
    except slm.SlmError as e:
        sys.stderr.write("%s: %s\n" % (os.path.basename(sys.argv[0]), e))
        return 1
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
