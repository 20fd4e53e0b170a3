"""``python -m sitq``: the same as the ``sitq`` command."""

from sitq.cli import main

if __name__ == "__main__":
    main()
