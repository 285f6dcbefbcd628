import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState, type DragEvent } from "react";
import { Card, ErrorNote } from "../../components/ui";
import { useT } from "../../i18n";
import { formatBytes } from "../../lib/format";
import { uploadFiles } from "../../lib/upload";

/** Drop files (or choose them); all go in one request, with its progress shown. */
export function Upload({ kbId }: { kbId: string }) {
  const t = useT();
  const client = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const [progress, setProgress] = useState(0);
  const [files, setFiles] = useState<File[]>([]);
  const upload = useMutation({
    mutationFn: (chosen: File[]) => uploadFiles(kbId, chosen, setProgress),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["documents", kbId] });
      void client.invalidateQueries({ queryKey: ["knowledge-base", kbId] });
    },
  });
  const start = (chosen: File[]) => {
    if (!chosen.length) return;
    setFiles(chosen);
    setProgress(0);
    upload.mutate(chosen);
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    start(Array.from(e.dataTransfer.files));
  };
  return (
    <Card title={t("upload.title")}>
      <div
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        className={`rounded-lg border-2 border-dashed p-6 text-center text-sm ${over ? "border-indigo-500 bg-indigo-50" : "border-slate-300"}`}
      >
        <p>{t("upload.drop")}</p>
        <button type="button" className="mt-2 rounded-md border border-slate-300 bg-white px-3 py-2 hover:bg-slate-100" onClick={() => input.current?.click()}>
          {t("upload.choose")}
        </button>
        <input
          ref={input}
          type="file"
          multiple
          className="sr-only"
          aria-label={t("upload.choose")}
          data-testid="upload-input"
          onChange={(e) => {
            start(Array.from(e.target.files ?? []));
            e.target.value = "";
          }}
        />
        <p className="mt-2 text-xs text-slate-500">{t("upload.types")}</p>
      </div>
      {files.length ? (
        <div className="mt-3 space-y-1 text-sm">
          <p>
            {files.map((f) => `${f.name} (${formatBytes(f.size)})`).join(", ")}
          </p>
          <div className="h-2 w-full overflow-hidden rounded bg-slate-200" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(progress * 100)} aria-label={t("upload.progress")}>
            <div className="h-full bg-indigo-600 transition-all" style={{ width: `${Math.round(progress * 100)}%` }} />
          </div>
          {upload.isSuccess ? <p role="status" className="text-green-700">{t("upload.done")}</p> : null}
        </div>
      ) : null}
      <div className="mt-2">
        <ErrorNote error={upload.error} />
      </div>
    </Card>
  );
}
