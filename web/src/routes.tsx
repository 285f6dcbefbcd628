// The dashboard's routes. Every page is its own chunk, loaded when first visited.
import type { ComponentType } from "react";
import { createBrowserRouter, type RouteObject } from "react-router";
import { RouteError } from "./components/RouteError";
import { Shell } from "./components/Shell";
import { Loading } from "./components/ui";

function page(load: () => Promise<{ default: ComponentType }>): Pick<RouteObject, "lazy"> {
  return { lazy: async () => ({ Component: (await load()).default }) };
}

export const routes: RouteObject[] = [
  { path: "/login", ...page(() => import("./pages/auth/Login")) },
  { path: "/signup", ...page(() => import("./pages/auth/SignUp")) },
  { path: "/verify", ...page(() => import("./pages/auth/Verify")) },
  { path: "/forgot-password", ...page(() => import("./pages/auth/ForgotPassword")) },
  { path: "/reset-password", ...page(() => import("./pages/auth/ResetPassword")) },
  {
    path: "/",
    element: <Shell />,
    errorElement: <RouteError />,
    hydrateFallbackElement: <Loading />,
    children: [
      { index: true, ...page(() => import("./pages/assistants/AssistantList")) },
      { path: "workspaces/new", ...page(() => import("./pages/workspace/NewWorkspace")) },
      { path: "invitations/accept", ...page(() => import("./pages/workspace/AcceptInvitation")) },
      { path: "assistants/:assistantId", ...page(() => import("./pages/assistants/AssistantEditor")) },
      { path: "knowledge", ...page(() => import("./pages/knowledge/KnowledgeBases")) },
      { path: "knowledge/:kbId", ...page(() => import("./pages/knowledge/KnowledgeBase")) },
      { path: "channels", ...page(() => import("./pages/channels/Channels")) },
      { path: "conversations", ...page(() => import("./pages/conversations/Conversations")) },
      { path: "conversations/:conversationId", ...page(() => import("./pages/conversations/Transcript")) },
      { path: "unanswered", ...page(() => import("./pages/unanswered/Unanswered")) },
      { path: "usage", ...page(() => import("./pages/usage/Usage")) },
      { path: "members", ...page(() => import("./pages/workspace/Members")) },
      { path: "api-keys", ...page(() => import("./pages/workspace/ApiKeys")) },
      { path: "audit", ...page(() => import("./pages/workspace/AuditLog")) },
      { path: "*", ...page(() => import("./pages/NotFound")) },
    ],
  },
];

export const router = createBrowserRouter(routes, { basename: "/app" });
