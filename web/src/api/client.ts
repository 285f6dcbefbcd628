// The typed API client: paths and bodies come from schema.d.ts, generated from Parley's
// OpenAPI schema by `make web-api`, so a changed endpoint breaks the type check here.
import createClient from "openapi-fetch";
import { ApiError, authedFetch } from "../auth/session";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

export const api = createClient<paths>({ baseUrl: window.location.origin, fetch: authedFetch });

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a successful call; otherwise an ApiError with the server's message. */
export async function unwrap<T>(call: Promise<Outcome<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok) return data as T;
  const body = (error ?? {}) as { detail?: unknown; fields?: { field: string; message: string }[] };
  const detail = typeof body.detail === "string" ? body.detail : `${response.status} ${response.statusText}`;
  throw new ApiError(response.status, detail, body.fields ?? []);
}
