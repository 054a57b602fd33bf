"""The sandbox's security suite: a corpus of hostile programs, faults, fuzzing, and the report."""
