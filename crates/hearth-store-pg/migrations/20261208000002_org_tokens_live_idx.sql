-- Creating an org token counts the org's live org tokens under the org
-- row's lock (--max-org-tokens): this index keeps that count to the org's
-- own org tokens instead of every workspace token of the deployment.
create index tokens_org_tokens_idx on tokens (org_id) where workspace_id is null;
