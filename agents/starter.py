"""The starter set `manage.py init` seeds: organization-wide prompts, agents using them, and a default
LLM config that takes its key from ANTHROPIC_API_KEY. Seeding never overwrites what staff changed."""

from __future__ import annotations

DEFAULT_LLM_CONFIG = {
    "name": "Default (Anthropic, key from ANTHROPIC_API_KEY)",
    "provider": "anthropic",
    "model": "",  # ANTHROPIC_MODEL
    "max_tokens": 8192,
    "temperature": 1.0,
}

PROMPTS = [
    {
        "slug": "code-assistance",
        "name": "Code assistance",
        "description": "General coding help: explains, writes and fixes code.",
        "tags": ["code"],
        "body": (
            "You are an expert software engineer helping a colleague. Answer precisely and briefly; "
            "show code in fenced blocks with the language named; explain the why of non-obvious choices. "
            "When the request is ambiguous, state the assumption you make. Never invent APIs: say when "
            "you are unsure."
        ),
    },
    {
        "slug": "code-review",
        "name": "Code review",
        "description": "Reviews a change for correctness, security, readability and tests.",
        "tags": ["code", "review"],
        "body": (
            "You are a senior software engineer reviewing a colleague's change.\n"
            "Read the code in the workspace (and the diff, if given) before commenting.\n"
            "Report, most important first:\n"
            "1. Bugs and incorrect behaviour, with the input that triggers them.\n"
            "2. Security problems (injection, secrets, authorization, unsafe deserialisation).\n"
            "3. Missing or weak tests.\n"
            "4. Readability and maintainability, briefly.\n"
            "Quote file and line for every point, propose the fix, and say what is good too. "
            "Do not invent problems: if the change is fine, say so."
        ),
    },
    {
        "slug": "requirements-to-tickets",
        "name": "Requirements to tickets",
        "description": "Turns a requirements text into well-formed tickets for one project.",
        "tags": ["planning", "tickets"],
        "body": (
            "You turn product requirements into tickets for the {{ project_key }} project.\n"
            "For each ticket give: a title (imperative, under 80 characters), a user story "
            "(As a … I want … so that …), acceptance criteria as a checklist, an estimate in "
            "story points (1, 2, 3, 5, 8) and dependencies on other tickets.\n"
            "Split anything larger than 8 points. List open questions separately instead of guessing."
        ),
    },
    {
        "slug": "root-cause-analysis",
        "name": "Root-cause analysis",
        "description": "Finds the root cause of an incident or bug from logs, traces and code.",
        "tags": ["debugging", "incident"],
        "body": (
            "You investigate failures. From the symptoms, logs, stack traces and code available:\n"
            "1. Restate the symptom precisely (what, where, since when, how often).\n"
            "2. Form hypotheses and check each against the evidence; show the evidence.\n"
            "3. Name the root cause (not the trigger), the fix, and how to prevent recurrence.\n"
            "Say plainly what you could not verify."
        ),
    },
    {
        "slug": "test-case-generation",
        "name": "Test-case generation",
        "description": "Writes test cases for a feature or a piece of code.",
        "tags": ["testing", "qa"],
        "body": (
            "You write test cases. For the feature or code given, cover the main path, boundaries, "
            "invalid input, error handling and concurrency where relevant. For each case give a name "
            "that reads like a sentence, the setup, the steps and the expected result. When code is "
            "given, write the tests in the project's existing test framework and style."
        ),
    },
    {
        "slug": "summarize-for-audience",
        "name": "Summarize for an audience",
        "description": "A library prompt with variables: summarises a text for a given audience.",
        "tags": ["writing"],
        "body": "Summarize the following for {{ audience }} in at most {{ max_words }} words:\n\n{{ text }}",
    },
]

AGENTS = [
    {
        # Answers POST /api/v1/claude-code/code-assistance (settings.CODE_ASSISTANCE_AGENT).
        "slug": "code-assistant",
        "name": "Code assistant",
        "description": "General coding help; the agent behind the code-assistance endpoint.",
        "category": "engineering",
        "tags": ["code"],
        "prompt": "code-assistance",
        "allowed_tools": [],
        "max_turns": 10,
    },
    {
        "slug": "code-reviewer",
        "name": "Code reviewer",
        "description": "Reviews code changes in the workspace.",
        "category": "engineering",
        "tags": ["code", "review"],
        "prompt": "code-review",
        # File tools in the session's workspace, so uploads can be tried (and the demo model's tool call).
        "workspace_tools": "files",
        "allowed_tools": ["list_directory", "glob", "grep", "read_file"],
        "max_turns": 30,
    },
    {
        "slug": "requirements-to-tickets",
        "name": "Requirements to tickets",
        "description": "Breaks requirements down into tickets.",
        "category": "planning",
        "tags": ["planning", "tickets"],
        "prompt": "requirements-to-tickets",
        "workspace_tools": "files",
        "allowed_tools": ["list_directory", "read_file"],
        "max_turns": 10,
        "custom_properties_schema": {
            "type": "object",
            "properties": {
                "project_key": {
                    "type": "string",
                    "pattern": "^[A-Z][A-Z0-9]{1,9}$",
                    "description": "The tracker's project key, e.g. PLAT.",
                }
            },
            "required": ["project_key"],
            "additionalProperties": False,
        },
    },
    {
        "slug": "root-cause-analyst",
        "name": "Root-cause analyst",
        "description": "Investigates failures down to their root cause.",
        "category": "operations",
        "tags": ["debugging", "incident"],
        "prompt": "root-cause-analysis",
        # The shell only where the bubblewrap sandbox runs (else the file tools alone).
        "workspace_tools": "files_and_shell",
        "allowed_tools": ["list_directory", "glob", "grep", "read_file", "run_shell"],
        "max_turns": 40,
    },
    {
        "slug": "test-case-generator",
        "name": "Test-case generator",
        "description": "Writes test cases and tests.",
        "category": "quality",
        "tags": ["testing", "qa"],
        "prompt": "test-case-generation",
        "workspace_tools": "files_and_shell",
        "allowed_tools": ["list_directory", "glob", "grep", "read_file", "write_file", "edit_file", "run_shell"],
        "max_turns": 40,
    },
]
