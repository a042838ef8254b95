"""The local stack: installs, starts and checks the real components BMT runs on."""
