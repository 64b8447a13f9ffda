import sys

try:
    from .cli import main
except ModuleNotFoundError as e:  # a Python without the package's dependencies (outside the venv)
    sys.exit(
        f"gravity-led-client: this Python ({sys.executable}) lacks the module {e.name!r}: "
        "run .venv/bin/gravity-led-client (or .venv/bin/python -m gravity_led.client), or install with 'pip install -e .' first"
    )

raise SystemExit(main())
