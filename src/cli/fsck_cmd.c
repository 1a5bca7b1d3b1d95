#include <stdio.h>

#include "cli/commands.h"

int berth_cmd_fsck(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("berth: fsck is not implemented yet\n", stderr);
	return 1;
}
