/* Subcommands of the berth binary other than serve; each returns the process exit status. */
#ifndef BERTH_CLI_COMMANDS_H
#define BERTH_CLI_COMMANDS_H

/* berth garbage-collect [--dry-run] [--delete-untagged] CONFIG.yml  (argv[0] is "garbage-collect") */
int berth_cmd_garbage_collect(int argc, char **argv);

/* berth fsck [--repair] ROOT  (argv[0] is "fsck") */
int berth_cmd_fsck(int argc, char **argv);

/* berth repo delete CONFIG.yml NAME  (argv[0] is "repo"; cli/repo_cmd.c) */
int berth_cmd_repo(int argc, char **argv);

/* berth usage CONFIG.yml  (argv[0] is "usage"; cli/repo_cmd.c) */
int berth_cmd_usage(int argc, char **argv);

/* berth retention CONFIG.yml [--dry-run]  (argv[0] is "retention"; cli/repo_cmd.c) */
int berth_cmd_retention(int argc, char **argv);

#endif
