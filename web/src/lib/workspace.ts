// The signed-in person and the workspace they are working in (kept across reloads).
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef } from "react";
import { api, unwrap, type Schemas } from "../api/client";
import { chooseWorkspace, currentWorkspace } from "../auth/session";

export type Me = Schemas["Me"];
export type WorkspaceRef = Schemas["WorkspaceRef"];

export const meQuery = { queryKey: ["me"], queryFn: () => unwrap(api.GET("/api/v1/me")), staleTime: 60_000 };

export function useMe() {
  return useQuery(meQuery);
}

/** The saved workspace if the person still belongs to it, else their first one. */
export function pickWorkspace(workspaces: WorkspaceRef[], saved: string | null): WorkspaceRef | undefined {
  return workspaces.find((w) => w.tenant_id === saved) ?? workspaces[0];
}

export function useWorkspace(): {
  me: Me | undefined;
  workspace: WorkspaceRef | undefined;
  role: string | undefined;
  choose: (id: string) => void;
} {
  const client = useQueryClient();
  const { data: me } = useMe();
  const workspace = me ? pickWorkspace(me.workspaces, currentWorkspace()) : undefined;
  const replaced = useRef(false);
  // Written during render, so the page's own requests below already carry the workspace.
  if (workspace && workspace.tenant_id !== currentWorkspace()) {
    replaced.current = currentWorkspace() !== null;
    chooseWorkspace(workspace.tenant_id);
  }
  // Pages may have asked with a remembered workspace this person no longer belongs to.
  useEffect(() => {
    if (!replaced.current) return;
    replaced.current = false;
    void client.resetQueries({ predicate: (q) => q.queryKey[0] !== "me" });
  });
  const choose = useCallback(
    (id: string) => {
      chooseWorkspace(id);
      // Everything cached belongs to the workspace that was: drop it all but the account.
      client.removeQueries({ predicate: (q) => q.queryKey[0] !== "me" });
      void client.invalidateQueries({ queryKey: ["me"] });
    },
    [client],
  );
  return { me, workspace, role: workspace?.role, choose };
}
