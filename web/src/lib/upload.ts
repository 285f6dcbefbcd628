// Multipart upload with progress (fetch reports none for request bodies, XMLHttpRequest does).
import { ApiError, currentWorkspace, getAccessToken, refresh } from "../auth/session";

function send(url: string, form: FormData, onProgress: (fraction: number) => void): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    const token = getAccessToken();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    const workspace = currentWorkspace();
    if (workspace) xhr.setRequestHeader("X-Parley-Tenant", workspace);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error("The upload failed: the connection was lost."));
    xhr.send(form);
  });
}

export function errorOfXhr(xhr: XMLHttpRequest): ApiError {
  try {
    const body = JSON.parse(xhr.responseText) as { detail?: string; fields?: { field: string; message: string }[] };
    return new ApiError(xhr.status, body.detail ?? `${xhr.status}`, body.fields ?? []);
  } catch {
    return new ApiError(xhr.status, `${xhr.status} ${xhr.statusText}`);
  }
}

export async function uploadFiles(kbId: string, files: File[], onProgress: (fraction: number) => void): Promise<unknown> {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const url = `/api/v1/knowledge-bases/${kbId}/documents`;
  let xhr = await send(url, form, onProgress);
  if (xhr.status === 401 && (await refresh())) xhr = await send(url, form, onProgress);
  if (xhr.status < 200 || xhr.status >= 300) throw errorOfXhr(xhr);
  return JSON.parse(xhr.responseText) as unknown;
}
