/* The CLI's subcommands: each takes argv[0] = its own name, returns the exit
 * code (0 ok, 1 failure, 2 bad usage). */
#ifndef TRH_TOOLS_CMDS_H
#define TRH_TOOLS_CMDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_embedder(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
/* What inspect does once the file is mapped: the report on a pack's
 * (untrusted) bytes to out, JSON or text; path only names it. 0 ok, 1 with a
 * message on stderr. tests/fuzz/fuzz_inspect.c calls it. */
int trh_inspect(const char *path, const uint8_t *bytes, size_t len, int json, FILE *out);
struct cJSON;
struct cJSON *trh_inspect_json(const char *path, const uint8_t *bytes, size_t len);
int cmd_route(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_add_model(int argc, char **argv);
int cmd_retire_model(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
