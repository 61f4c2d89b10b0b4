// The agent picker and the agent's prompt variables.
import { els, getJSON, results, setStatus, state } from "./core.js";

export async function loadAgents() {
  const agents = results(await getJSON("/api/v1/agents?page_size=200"));
  state.agents = new Map(agents.map((agent) => [agent.slug, agent]));
  const picked = els.agent.value;
  els.agent.replaceChildren(...agents.map((agent) => new Option(agent.name, agent.slug)));
  if (state.agents.has(picked)) els.agent.value = picked;
  if (!agents.length) setStatus("No agents yet: ask an administrator to create one.");
}

// --- the agent of the chat and its prompt variables --------------------------------------------

// An open session keeps its own agent (it can't change): the picker shows it, and is for new chats.
export async function showSessionAgent() {
  if (!state.sessionId) { els.agent.disabled = false; return; }
  let session = state.sessions.get(state.sessionId);
  if (!session) {
    session = await getJSON(`/api/v1/sessions/${state.sessionId}`).catch(() => null);
    if (!session) return;
    state.sessions.set(session.id, session);
  }
  const { slug, name } = session.agent_detail || {};
  if (!slug) return;
  if (![...els.agent.options].some((option) => option.value === slug)) els.agent.append(new Option(name, slug));
  els.agent.value = slug;
  els.agent.disabled = true;
}

// The variables the chat's agent needs and doesn't have yet (a new chat: none given yet).
function missingVariables() {
  const session = state.sessionId ? state.sessions.get(state.sessionId) : null;
  const slug = session ? session.agent_detail && session.agent_detail.slug : els.agent.value;
  const agent = state.agents.get(slug);
  if (!agent) return [];
  const given = (session && session.custom_properties) || {};
  const variables = agent.prompt_variables || [];
  const missing = variables.filter((variable) => variable.required && !(variable.name in given));
  if (!missing.length) return [];
  // With a required one missing, the form offers the optional ones of a new chat too.
  return session ? missing : variables;
}

export function showVariables() {
  const wanted = missingVariables();
  const previous = variableValues();
  els.variableFields.replaceChildren(...wanted.map((variable) => {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { name: variable.name, value: previous[variable.name] || "" });
    input.required = variable.required;
    input.placeholder = variable.required ? "required" : `default: ${variable.default}`;
    label.append(Object.assign(document.createElement("span"), { textContent: variable.name }), input);
    return label;
  }));
  els.variables.hidden = !wanted.length;
}

export function variableValues() {
  const values = {};
  for (const input of els.variableFields.querySelectorAll("input")) if (input.value.trim()) values[input.name] = input.value.trim();
  return values;
}
