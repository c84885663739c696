"""The stand-in mini-program platform of `make run` and the tests (see main.py)."""
