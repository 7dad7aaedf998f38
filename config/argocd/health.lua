-- Argo CD health check of sluice.dev/DataPipeline.
--
-- Install it under the argocd-cm key
--   resource.customizations.health.sluice.dev_DataPipeline
-- (README, "Argo CD"). It runs in the Lua that Argo CD embeds with the
-- libraries Argo CD opens for argocd-cm checks: no string or math library,
-- so only `..`, tostring and ipairs below.
--
--   Suspended    spec.suspend is set
--   Progressing  no status yet; status.observedGeneration (or Ready's) older
--                than metadata.generation; Reconciling=True
--   Degraded     Stalled=True (needs a change), or Healthy=False (runtime:
--                dead letters, errors, failed executions, lagging consumers)
--   Healthy      Ready=True for the current generation
local hs = {}

local function says(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is set: Sluice leaves the AWS resources as they are"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for Sluice to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Sluice has not yet reconciled generation " .. tostring(generation)
  return hs
end

local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  if c.type ~= nil then
    conditions[c.type] = c
  end
end

local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
  return hs
end

local healthy = conditions["Healthy"]
if healthy ~= nil and healthy.status == "False" then
  hs.status = "Degraded"
  hs.message = says(healthy)
  return hs
end

local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = says(reconciling)
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Ready describes generation " .. tostring(ready.observedGeneration) .. ", not " .. tostring(generation)
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = "not Ready: " .. says(ready)
else
  hs.message = "waiting for the Ready condition"
end
return hs
