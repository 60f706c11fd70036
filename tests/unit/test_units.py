"""rongqi.units: go-units' sizes and durations, the figures podman and dockerd print."""

from rongqi.units import bytes_size, human_duration, human_size


def test_sizes_as_go_units_prints_them():
    assert human_size(2141317) == "2.141MB"            # HumanSize: podman's system df
    assert human_size(0) == "0B" and human_size(999) == "999B"
    assert human_size(2140160, 3, space=True) == "2.14 MB"   # podman images' SIZE
    assert human_size(11400, 3, space=True) == "11.4 kB"
    assert human_size(1240000, 3) == "1.24MB"
    assert bytes_size(528384) == "516KiB" and bytes_size(25_275_482_522) == "23.54GiB"


def test_durations_as_go_units_words_them():
    assert [human_duration(s) for s in (0.4, 1, 59, 60, 3599, 3600, 5400, 3 * 86400,
                                        20 * 86400, 90 * 86400, 3 * 365 * 86400)] == [
        "Less than a second", "1 second", "59 seconds", "About a minute", "59 minutes",
        "About an hour", "2 hours", "3 days", "2 weeks", "3 months", "3 years"]
