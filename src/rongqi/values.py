"""Value classes as `@dataclass` makes them, without importing dataclasses or generating code:
what the engine's hot path (`rongqi run`: options, bundle, image store, records) defines.

dataclasses imports inspect (and ast, dis, tokenize) and compiles an __init__, __repr__ and
__eq__ for every class: ~12 ms for the import and ~20 ms for ContainerOptions' 70 fields on
this host, more than the rest of the CLI's own work. Here `dataclass` reads the class's
annotations once and installs shared methods that walk a tuple of fields; instances behave as
dataclasses' for what rongqi uses: positional and keyword construction in field order,
defaults, `field(default=, default_factory=, compare=, repr=)`, `frozen=True` (assignment
raises FrozenInstanceError, instances hash by their compared fields), `eq=False`, inheritance
from another such class, `__post_init__`, and `asdict` (also over real dataclasses).
Type checkers see dataclasses itself (TYPE_CHECKING below), so constructors stay checked.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, asdict, dataclass, field, fields, replace
else:
    class _Missing:
        __slots__ = ()

        def __repr__(self) -> str:
            return "MISSING"

    MISSING = _Missing()

    class FrozenInstanceError(AttributeError):
        """As dataclasses.FrozenInstanceError: an assignment to a frozen instance's field."""

    class Field:
        """One field: its name, default (or default_factory), and whether eq/hash and repr use it."""

        __slots__ = ("name", "default", "default_factory", "compare", "repr")

        def __init__(self, default=MISSING, default_factory=MISSING, compare=True, repr=True):
            if default is not MISSING and default_factory is not MISSING:
                raise ValueError("cannot specify both default and default_factory")
            self.name = ""
            self.default = default
            self.default_factory = default_factory
            self.compare = compare
            self.repr = repr

    def field(*, default=MISSING, default_factory=MISSING, compare=True, repr=True):
        """dataclasses.field's subset: default, default_factory, compare, repr."""
        return Field(default, default_factory, compare, repr)

    def _is_classvar(annotation) -> bool:
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        return text.startswith(("ClassVar", "typing.ClassVar"))

    def dataclass(cls=None, /, *, frozen=False, eq=True, repr=True):
        """@dataclass, @dataclass(frozen=True), @dataclass(eq=False): see the module's docstring."""
        def wrap(cls):
            return _process(cls, frozen, eq, repr)
        return wrap if cls is None else wrap(cls)

    def _process(cls, frozen, eq, want_repr):
        fields_: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            for f in getattr(base, "__values_fields__", ()):
                fields_[f.name] = f
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if _is_classvar(annotation):
                continue
            value = cls.__dict__.get(name, MISSING)
            f = value if isinstance(value, Field) else Field(default=value)
            f.name = name
            if isinstance(f.default, (list, dict, set)):
                raise ValueError(f"mutable default {type(f.default)} for field {name} "
                                 "is not allowed: use default_factory")
            if f.default is MISSING:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, f.default)  # as dataclasses leaves it: a class attribute
            fields_.pop(name, None)
            fields_[name] = f
        ordered = tuple(fields_.values())
        seen_default = False
        for f in ordered:
            has_default = f.default is not MISSING or f.default_factory is not MISSING
            if seen_default and not has_default:
                raise TypeError(f"non-default argument '{f.name}' follows default argument")
            seen_default = seen_default or has_default
        cls.__values_fields__ = ordered
        cls.__values_compare__ = tuple(f.name for f in ordered if f.compare)
        cls.__match_args__ = tuple(f.name for f in ordered)
        # dataclasses' rule for __hash__: a class's own __hash__ stands (the None Python puts
        # there beside an __eq__ of the class does not count); else eq and frozen hash the
        # compared fields, eq alone makes instances unhashable.
        own_hash = cls.__dict__.get("__hash__", MISSING)
        explicit_hash = not (own_hash is MISSING or (own_hash is None and "__eq__" in cls.__dict__))
        cls.__init__ = _init
        if want_repr and "__repr__" not in cls.__dict__:
            cls.__repr__ = _repr
        if eq and "__eq__" not in cls.__dict__:
            cls.__eq__ = _eq
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
        if eq and not explicit_hash:
            cls.__hash__ = _hash if frozen else None
        return cls

    def _init(self, *args, **kw):
        cls = type(self)
        fields_ = cls.__values_fields__
        if len(args) > len(fields_):
            raise TypeError(f"{cls.__qualname__}.__init__() takes {len(fields_) + 1} positional "
                            f"arguments but {len(args) + 1} were given")
        d = self.__dict__
        for i, f in enumerate(fields_):
            name = f.name
            if i < len(args):
                if name in kw:
                    raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for "
                                    f"argument '{name}'")
                d[name] = args[i]
            elif name in kw:
                d[name] = kw.pop(name)
            elif f.default_factory is not MISSING:
                d[name] = f.default_factory()
            elif f.default is not MISSING:
                d[name] = f.default
            else:
                raise TypeError(f"{cls.__qualname__}.__init__() missing 1 required positional "
                                f"argument: '{name}'")
        if kw:
            raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument "
                            f"'{next(iter(kw))}'")
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _repr(self):
        cls = type(self)
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}"
                          for f in cls.__values_fields__ if f.repr)
        return f"{cls.__qualname__}({inner})"

    def _key(self):
        return tuple(getattr(self, n) for n in type(self).__values_compare__)

    def _eq(self, other):
        if other.__class__ is self.__class__:
            return _key(self) == _key(other)
        return NotImplemented

    def _hash(self):
        return hash(_key(self))

    def _frozen_setattr(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field '{name}'")

    def _frozen_delattr(self, name):
        raise FrozenInstanceError(f"cannot delete field '{name}'")

    def fields(class_or_instance):
        """The fields, in order (each with .name, .default, .default_factory)."""
        cls = class_or_instance if isinstance(class_or_instance, type) else type(class_or_instance)
        try:
            return cls.__values_fields__
        except AttributeError:
            raise TypeError("must be called with a dataclass type or instance") from None

    def replace(obj, /, **changes):
        """A copy of obj with some fields changed, as dataclasses.replace."""
        for f in type(obj).__values_fields__:
            if f.name not in changes:
                changes[f.name] = getattr(obj, f.name)
        return type(obj)(**changes)

    _ATOMIC = (str, int, float, bool, type(None), bytes, complex)

    def asdict(obj, *, dict_factory=dict):
        """dataclasses.asdict over these classes (and real dataclasses): a deep copy as dicts."""
        if not hasattr(type(obj), "__values_fields__") and \
                not hasattr(type(obj), "__dataclass_fields__"):
            raise TypeError("asdict() should be called on dataclass instances")
        return _asdict(obj, dict_factory)

    def _asdict(obj, dict_factory):
        if type(obj) in _ATOMIC:
            return obj
        cls = type(obj)
        names = getattr(cls, "__values_fields__", None)
        if names is not None:
            return dict_factory([(f.name, _asdict(getattr(obj, f.name), dict_factory))
                                 for f in names])
        if hasattr(cls, "__dataclass_fields__") and not isinstance(obj, type):
            import dataclasses

            return dataclasses.asdict(obj, dict_factory=dict_factory)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return cls(*[_asdict(v, dict_factory) for v in obj])
        if isinstance(obj, (list, tuple)):
            return cls(_asdict(v, dict_factory) for v in obj)
        if isinstance(obj, dict):
            if hasattr(cls, "default_factory"):
                out = cls(obj.default_factory)
                for k, v in obj.items():
                    out[_asdict(k, dict_factory)] = _asdict(v, dict_factory)
                return out
            return cls((_asdict(k, dict_factory), _asdict(v, dict_factory))
                       for k, v in obj.items())
        import copy

        return copy.deepcopy(obj)
