"""The command line's exit statuses beyond 0 and 1 (sysexits.h where one fits)."""

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a service the program needs is not there
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an internal error (a background loop died)
