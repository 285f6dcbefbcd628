// What each workspace role may do in the dashboard, as the API's ROLE_PERMISSIONS grants it:
// the UI hides what the server would refuse, and the server still decides.
export type Role = "owner" | "admin" | "agent" | "viewer";

export const ROLES: Role[] = ["owner", "admin", "agent", "viewer"];

export function canManage(role: string | undefined): boolean {
  return role === "owner" || role === "admin";
}

export function canChat(role: string | undefined): boolean {
  return canManage(role) || role === "agent";
}
