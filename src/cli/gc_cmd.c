#include <stdio.h>

#include "cli/commands.h"

int berth_cmd_garbage_collect(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("berth: garbage-collect is not implemented yet\n", stderr);
	return 1;
}
