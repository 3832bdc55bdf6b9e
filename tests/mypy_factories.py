"""mypy plugin: calling a factory_boy factory gives its model, as it does at run time.

factory_boy types `ProductFactory.create()` as `Product` (its factories are generic), but the
call `ProductFactory(...)` goes through an untyped metaclass `__call__`, which mypy ignores, so
it would be typed as the factory itself. No maintained plugin or stub fixes this.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.maptype import map_instance_to_supertype
from mypy.nodes import TypeInfo
from mypy.plugin import FunctionContext, Plugin
from mypy.types import AnyType, Instance, Type, TypeOfAny, get_proper_type

BASE_FACTORY = "factory.base.BaseFactory"


class FactoryCallPlugin(Plugin):
    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        symbol = self.lookup_fully_qualified(fullname)
        if symbol is not None and isinstance(symbol.node, TypeInfo) and symbol.node.has_base(BASE_FACTORY):
            return _factory_model
        return None


def _factory_model(ctx: FunctionContext) -> Type:
    factory_type = get_proper_type(ctx.default_return_type)
    if not isinstance(factory_type, Instance):
        return ctx.default_return_type
    base = next(info for info in factory_type.type.mro if info.fullname == BASE_FACTORY)
    model_args = map_instance_to_supertype(factory_type, base).args
    return model_args[0] if model_args else AnyType(TypeOfAny.from_omitted_generics)


def plugin(version: str) -> type[Plugin]:
    return FactoryCallPlugin
