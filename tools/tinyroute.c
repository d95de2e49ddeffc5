/* tinyroute: the host CLI. One subcommand per job; see `tinyroute --help`. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "tinyroute.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"keygen", cmd_keygen, "write an ECDSA P-256 signing key pair (PEM)"},
    {"pubkey", cmd_pubkey, "print a public key as the device takes it (tr_pubkey, hex, DER)"},
    {"embedder", cmd_embedder, "convert word vectors into the built-in embedder table"},
    {"import", cmd_import, "turn a shared data set into the dataset layout"},
    {"build", cmd_build, "build and sign a routing pack from a dataset"},
    {"verify", cmd_verify, "check a pack's signature and structure"},
    {"inspect", cmd_inspect, "print a pack's header and sections (unverified)"},
    {"route", cmd_route, "route prompts with a pack"},
    {"embed", cmd_embed, "print the built-in embedding of prompts"},
    {"eval", cmd_eval, "accuracy and cost of a pack on held-out prompts"},
    {"add-model", cmd_add_model, "signed delta: add models the base pack never saw"},
    {"retire-model", cmd_retire_model, "signed delta: retire models"},
    {"calibrate", cmd_calibrate, "signed delta: the lambda that gives a cloud share"},
    {"report", cmd_report, "evaluation results (eval --json) as an HTML page"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tinyroute COMMAND [OPTIONS]   (tinyroute COMMAND --help)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tinyroute %s (kernel %s)\n", TR_VERSION_STRING, tr_kernel_name());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tinyroute: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
