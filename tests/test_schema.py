import numpy as np
import pytest

from basis_core import schema
from basis_core.errors import SchemaError, UnknownName
from basis_core.registry import Registry


@pytest.mark.parametrize("kind", list(schema.Kind))
def test_every_kind_is_one_cache_line_with_the_common_header(kind):
    dt = schema.DTYPES[kind]
    assert dt.itemsize == 64
    for name, off in [
        ("seq", 0),
        ("ts_ns", 8),
        ("kind", 16),
        ("source", 17),
        ("venue", 18),
        ("sub", 19),
        ("instrument", 20),
        ("aux", 22),
        ("check", 60),
    ]:
        assert dt.fields[name][1] == off, (kind, name)


def test_payload_fields_do_not_overlap():
    for kind, dt in schema.DTYPES.items():
        spans = sorted((off, off + f.itemsize, name) for name, (f, off, *_) in dt.fields.items())
        for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
            assert a1 <= b0, f"{kind.name}: {an} overlaps {bn}"


def test_empty_records_are_64_byte_aligned_and_typed():
    for n in (1, 3, 100):
        arr = schema.empty(schema.Kind.TRADE, n)
        assert arr.ctypes.data % 64 == 0
        assert (arr["kind"] == schema.Kind.TRADE).all()


def test_seal_then_verify_detects_a_flipped_byte():
    arr = schema.empty(schema.Kind.ORDER_NEW, 4)
    arr["coid"] = [11, 12, 13, 14]
    arr["price"] = 50_000.5
    schema.seal(arr)
    assert schema.verify(arr).all()
    arr.view(np.uint8)[64 * 2 + 33] ^= 0x40
    assert schema.verify(arr).tolist() == [True, True, False, True]


def test_view_reinterprets_raw_words_as_a_kind():
    arr = schema.empty(schema.Kind.BALANCE_UPDATE, 2)
    arr["free"] = [1.5, 2.5]
    words = arr.view(np.uint64).reshape(-1, 8)
    back = schema.view(words, schema.Kind.BALANCE_UPDATE)
    assert back["free"].tolist() == [1.5, 2.5]
    with pytest.raises(SchemaError):
        schema.view(np.zeros(65, np.uint8), schema.Kind.TRADE)


def test_coid_round_trips_and_rejects_bad_legs():
    coid = schema.make_coid(123456, 1)
    assert schema.split_coid(coid) == (123456, 1)
    with pytest.raises(SchemaError):
        schema.make_coid(1, 16)
    with pytest.raises(SchemaError):
        schema.make_coid(0, 0)


def test_registry_ids_are_small_stable_and_named_errors():
    reg = Registry()
    assert reg.venues.add("alpha") == 1
    assert reg.venues.add("beta") == 2
    assert reg.venues.add("alpha") == 1
    assert reg.venues.name(2) == "beta"
    with pytest.raises(UnknownName, match="gamma"):
        reg.venue("gamma")
    assert Registry.from_dict(reg.as_dict()).venue("beta") == 2
