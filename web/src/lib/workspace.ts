// The signed-in person and the workspace they are working in (kept across reloads).
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback } from "react";
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
  if (workspace && workspace.tenant_id !== currentWorkspace()) chooseWorkspace(workspace.tenant_id);
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
