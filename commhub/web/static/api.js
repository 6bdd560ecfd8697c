// The REST API with the session cookie. A 401 means the session ended: the app goes back to the sign-in form.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onSignedOut = () => {};

export function whenSignedOut(callback) {
  onSignedOut = callback;
}

const TIMEOUT_MS = 15000;

export async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" },
                    signal: AbortSignal.timeout(TIMEOUT_MS) };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, error.name === "TimeoutError" ? "timeout" : "network");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/session") onSignedOut();
    throw new ApiError(response.status, data?.error?.message || response.statusText);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const patch = (path, body) => api("PATCH", path, body);

export function query(path, params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null) search.set(name, value);
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
