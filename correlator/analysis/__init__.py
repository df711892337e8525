"""Pure analysis: windows, scope, (later) scoring and ranking. No I/O, no clock, no settings:
everything arrives as arguments, so it is tested with tables of values and an injected now."""
