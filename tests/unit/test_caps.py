"""Capability names and masks: no privileges needed."""

from __future__ import annotations

import pytest

from rongqi.linux import caps


def test_names_and_numbers_follow_the_kernel_header():
    assert caps.CAPABILITIES["CAP_CHOWN"] == 0
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert caps.CAPABILITIES["CAP_SYS_RESOURCE"] == 24
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))


def test_mask_and_names_round_trip_in_kernel_order():
    m = caps.mask(["CAP_KILL", "CAP_CHOWN", "CAP_SYS_ADMIN"])
    assert m == (1 << 5) | (1 << 0) | (1 << 21)
    assert caps.names(m) == ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]


def test_unknown_capability_error_names_it():
    with pytest.raises(caps.UnknownCapability, match="CAP_SYS_ADMINN") as info:
        caps.mask(["CAP_CHOWN", "CAP_SYS_ADMINN"])
    assert info.value.name == "CAP_SYS_ADMINN"
    assert isinstance(info.value, ValueError)


def test_lowercase_or_unprefixed_names_are_unknown():
    # config.json spells capabilities as the kernel does; docker's "SYS_ADMIN" is the engine's job.
    for bad in ("cap_chown", "CHOWN", ""):
        with pytest.raises(caps.UnknownCapability):
            caps.mask([bad])


def test_caps_past_the_kernels_last_are_skipped(monkeypatch):
    monkeypatch.setattr(caps, "_last_cap", 37)
    m = caps.mask(["CAP_CHOWN", "CAP_BPF", "CAP_PERFMON", "CAP_AUDIT_READ"])
    assert caps.names(m) == ["CAP_CHOWN", "CAP_AUDIT_READ"]
    assert caps.unsupported(["CAP_CHOWN", "CAP_BPF", "CAP_PERFMON"]) == ["CAP_BPF", "CAP_PERFMON"]


def test_names_of_bits_without_a_name_are_numbered():
    assert caps.names(1 << 50 | 1) == ["CAP_CHOWN", "CAP_50"]
    assert caps.names(0) == []


def test_last_cap_matches_proc():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())


def test_current_reads_the_five_sets_of_this_process():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = int(v.strip(), 16) if k.startswith("Cap") else None
    now = caps.current()
    assert now == caps.CapSets(fields["CapBnd"], fields["CapEff"], fields["CapPrm"],
                               fields["CapInh"], fields["CapAmb"])
    assert "bounding=" in repr(now)


def test_unknown_lists_the_names_mask_would_refuse():
    assert caps.unknown(["CAP_CHOWN", "CAP_BOGUS", "SYS_ADMIN"]) == ["CAP_BOGUS", "SYS_ADMIN"]
    assert caps.unknown(["CAP_CHOWN"]) == []
