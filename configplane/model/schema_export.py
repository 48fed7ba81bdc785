"""JSON Schemas generated from the pydantic models (the files in schemas/ are checked in)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from configplane.model.document import StackDocument
from configplane.model.outputs import StackOutputs
from configplane.projectfiles import write_files

GENERATED: dict[str, tuple[type[BaseModel], str]] = {
    "stack.schema.json": (StackDocument, "configplane stack document"),
    "outputs.schema.json": (StackOutputs, "configplane stack outputs"),
}


def generated_schema(model: type[BaseModel], title: str, file_name: str) -> dict:
    schema = model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://configplane.dev/schemas/{file_name}",
        **schema,
        "title": title,
    }


def write_schemas(schemas_dir: Path) -> None:
    write_files(schemas_dir, {
        file_name: json.dumps(generated_schema(model, title, file_name), indent=2) + "\n"
        for file_name, (model, title) in GENERATED.items()})


if __name__ == "__main__":
    write_schemas(Path(__file__).resolve().parents[2] / "schemas")
