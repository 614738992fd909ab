/*
 * serve.h - `slm serve`: an OpenAI- and Ollama-compatible HTTP server over
 * the slm library (examples/serve/serve.c; POSIX sockets and threads).
 */
#ifndef SLM_SERVE_H
#define SLM_SERVE_H

/* The `slm serve` command: argv[0] is the program, argv[1] "serve".
   Returns the process exit code. */
int serve_main(int argc, char **argv);

#endif
