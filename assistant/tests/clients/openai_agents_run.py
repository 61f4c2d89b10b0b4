"""openai-agents' default model (OpenAIResponsesModel, the Responses API) against a Conduit server,
`Runner.run` twice, chained by `previous_response_id`; a conversation carried by the client
(`to_input_list()` + the next message); one `Runner.run_streamed`; one run of an agent with a
`function_tool` (called by the model, run here). Prints JSON.

Run as its own process (test_openai_responses_live.py): the package imports as `agents`, the name
of Conduit's Django app, so it can't be imported in the project's own processes.
    python openai_agents_run.py BASE_URL API_KEY AGENT_SLUG
"""

from __future__ import annotations

import asyncio
import json
import sys

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI


async def main(base: str, key: str, slug: str) -> dict:
    set_tracing_disabled(True)  # no traces sent to OpenAI's own platform
    client = AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    agent = Agent(name="conduit", instructions="Answer kindly.", model=OpenAIResponsesModel(model=slug, openai_client=client))

    first = await Runner.run(agent, "Hi, I'm Alice")
    chained = await Runner.run(agent, "Who am I?", previous_response_id=first.last_response_id)
    opening = await Runner.run(agent, "Count to two")
    carried = await Runner.run(agent, opening.to_input_list() + [{"role": "user", "content": "And on?"}])
    streamed = Runner.run_streamed(agent, "Stream it")
    deltas = []
    async for event in streamed.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            deltas.append(event.data.delta)

    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny, 24°C in {city}"

    tooled = await Runner.run(agent.clone(tools=[get_weather]), "Weather in Paris?")

    def summary(result) -> dict:
        usage = result.context_wrapper.usage
        return {"output": result.final_output, "response_id": result.last_response_id,
                "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}  # fmt: skip

    return {
        "first": summary(first), "chained": summary(chained), "opening": summary(opening), "carried": summary(carried),
        "streamed": {**summary(streamed), "deltas": deltas}, "tooled": {**summary(tooled), "calls": calls},
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
