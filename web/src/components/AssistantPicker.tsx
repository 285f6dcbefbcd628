import type { Schemas } from "../api/client";
import { useT } from "../i18n";
import { Field, Select } from "./ui";

/** A choice of the workspace's assistants, with an "any" entry when `anyLabel` is given. */
export function AssistantPicker({
  assistants,
  value,
  onChange,
  anyLabel,
}: {
  assistants: Schemas["AssistantRead"][];
  value: string;
  onChange: (id: string) => void;
  anyLabel?: string;
}) {
  const t = useT();
  return (
    <Field label={t("channels.assistant")}>
      {(id) => (
        <Select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
          {anyLabel ? <option value="">{anyLabel}</option> : null}
          {assistants.map((a) => (
            <option key={a.id} value={a.id}>
              {a.name}
            </option>
          ))}
        </Select>
      )}
    </Field>
  );
}
