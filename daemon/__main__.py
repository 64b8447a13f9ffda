import sys

try:
    from .cli import main
except ModuleNotFoundError as e:  # a Python without the package's dependencies (outside the venv)
    sys.exit(
        f"gravity-led-daemon: this Python ({sys.executable}) lacks the module {e.name!r}: "
        "run .venv/bin/gravity-led-daemon (or .venv/bin/python -m gravity_led.daemon), or install with 'pip install -e .' first"
    )

raise SystemExit(main())
