// Keyset-paginated lists (items + next_cursor) as one growing list with "Load more".
import { useInfiniteQuery } from "@tanstack/react-query";
import { Button } from "../components/ui";
import { useT } from "../i18n";

export interface PageOf<T> {
  items: T[];
  next_cursor?: string | null;
}

export function usePaged<T>(
  key: unknown[],
  fetchPage: (cursor: string | undefined) => Promise<PageOf<T>>,
  options: { refetchInterval?: (items: T[]) => number | false } = {},
) {
  const query = useInfiniteQuery({
    queryKey: key,
    queryFn: ({ pageParam }) => fetchPage(pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    refetchInterval: (query) => options.refetchInterval?.(query.state.data?.pages.flatMap((p) => p.items) ?? []) ?? false,
  });
  const items = query.data?.pages.flatMap((p) => p.items) ?? [];
  return { ...query, items };
}

export function LoadMore({ query }: { query: { hasNextPage: boolean; isFetchingNextPage: boolean; fetchNextPage: () => unknown } }) {
  const t = useT();
  if (!query.hasNextPage) return null;
  return (
    <div className="mt-3 text-center">
      <Button variant="secondary" disabled={query.isFetchingNextPage} onClick={() => void query.fetchNextPage()}>
        {t("loadMore")}
      </Button>
    </div>
  );
}
