"""The fault-injection suite of issue #17, quick variants: every family, each case printed with what happened.

The long variants (a real 20000x20000 bomb, real SIGKILLs of `train`, whole training runs)
and a before/after table against another checkout: benchmarks/fault_injection.py.
"""

import faults
import pytest

QUICK = [c for c in faults.CASES if not c.long]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return faults.Ctx(tmp_path_factory.mktemp("faults"))


@pytest.mark.parametrize("case", QUICK, ids=[f"{c.family.split()[0]}-{c.name}" for c in QUICK])
def test_fault(case, ctx):
    result = faults.outcome(case, ctx)
    faults.RESULTS.append((case.family, case.name, result))
    print(f"[{case.family}] {case.name}\n    -> {result}")
    assert case.expect in result
    assert not result.startswith(("CRASH", "n/a"))
