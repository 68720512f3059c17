// What the teams, users and organizations pages share: names, the organizations list, and
// one refresh for every list of the management plane.

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "./api";
import type { OrgInfo, TeamInfo } from "./types";

export const teamName = (team: Pick<TeamInfo, "team_alias" | "team_id">) => team.team_alias ?? team.team_id;

/** A member named by user id or, with an @, by email (as the API takes them). */
export const memberRef = (text: string) =>
  text.includes("@") ? { user_email: text.trim() } : { user_id: text.trim() };

/** The organizations (admins and viewers may list them). */
export function useOrgs(enabled: boolean) {
  return useQuery({ queryKey: ["orgs"], enabled, queryFn: () => api<OrgInfo[]>("organization/list") });
}

/** Every list of the plane changes together (a deleted team leaves its users' lists…). */
export function usePlaneRefresh() {
  const queries = useQueryClient();
  return () => {
    for (const key of ["teams", "users", "orgs", "keys"]) void queries.invalidateQueries({ queryKey: [key] });
  };
}
