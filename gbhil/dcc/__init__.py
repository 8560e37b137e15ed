"""The DCC emulator: DUIS in, GBCS out, and the DCC's own data (SMI, CPL) in SQLite."""
