"""The generation log: its writer (`writer.py`), its readers (`reader.py`) and the path
that closes a log whose producer died (`recovery.py`)."""
