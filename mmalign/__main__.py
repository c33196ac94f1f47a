import sys

from .interrupt import Stopped, handle_signals

handle_signals()  # before the slow imports: a Ctrl-C while they run is one line too
try:
    from .cli import main
except (Stopped, KeyboardInterrupt) as stop:
    sys.stderr.write(f"error: {stop if isinstance(stop, Stopped) else 'interrupted'}\n")
    sys.exit(stop.exit_code if isinstance(stop, Stopped) else 130)

main()
