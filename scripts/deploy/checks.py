"""The pass/fail counter shared by the deploy checks: one line per check, then a summary line
`LABEL: N passed, M failed` (the closing-line format CI reads) and optional counts file."""


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, why=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}{': ' + why if why else ''}")
        return ok

    def problems(self, name, problems):
        """One check that passes when the list of problems is empty."""
        return self.check(name, not problems, "; ".join(problems))

    def finish(self, label, counts_path=None):
        """Prints the summary, writes 'passed failed' to counts_path; returns the exit status."""
        print(f"{label}: {self.passed} passed, {self.failed} failed")
        if counts_path:
            with open(counts_path, "w") as f:
                f.write(f"{self.passed} {self.failed}\n")
        return 1 if self.failed else 0
