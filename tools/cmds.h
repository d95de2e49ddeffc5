/* The CLI's subcommands: each takes argv[0] = its own name, returns the exit
 * code (0 ok, 1 failure, 2 bad usage). */
#ifndef TR_TOOLS_CMDS_H
#define TR_TOOLS_CMDS_H

int cmd_keygen(int argc, char **argv);
int cmd_embedder(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_add_model(int argc, char **argv);
int cmd_retire_model(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
