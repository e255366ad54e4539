"""Corrections across task kinds, and queries phrased differently from what was stored.

Each case: (kind, task, problem, fix, query). The query is how a later, similar task would
be asked, in other words than the stored task and problem.
"""

from __future__ import annotations

CASES: list[tuple[str, str, str, str, str]] = [
    # -- SQL ---------------------------------------------------------------------------------
    (
        "sql",
        "Write a SQL query listing customers with no orders",
        "LEFT JOIN filtered in the WHERE clause turns into an inner join",
        "put the condition in the ON clause or test orders.id IS NULL",
        "Query for clients who never placed a purchase",
    ),
    (
        "sql",
        "SQL: total revenue per month from the sales table",
        "grouping by the raw timestamp gives one row per sale instead of per month",
        "group by date_trunc('month', sold_at)",
        "monthly sum of sales amounts in SQL",
    ),
    (
        "sql",
        "Find duplicate email addresses in the users table",
        "GROUP BY without HAVING count(*) > 1 returns every address",
        "add HAVING count(*) > 1",
        "SQL to detect users sharing the same e-mail",
    ),
    (
        "sql",
        "Insert user input into the database from a Python script",
        "query built with string formatting is open to SQL injection",
        "use parameterised queries with placeholders",
        "save form fields into postgres safely from python code",
    ),
    (
        "sql",
        "Get the top 3 highest paid employees per department",
        "LIMIT 3 applies to the whole result, not per department",
        "use ROW_NUMBER() OVER (PARTITION BY department ORDER BY salary DESC)",
        "three best salaries in every department, SQL",
    ),
    # -- Python ------------------------------------------------------------------------------
    (
        "python",
        "Write a function that returns the median of a list",
        "sorting the list in place mutates the caller's data",
        "sort a copy with sorted(values)",
        "compute the middle value of a sequence of numbers in Python",
    ),
    (
        "python",
        "Python function with a list as a default argument to collect items",
        "mutable default argument is shared between calls",
        "default to None and create the list inside the function",
        "helper that appends to an accumulator parameter which defaults to an empty list",
    ),
    (
        "python",
        "Read a large CSV file and sum one column",
        "reading the whole file into memory fails on big inputs",
        "stream rows with csv.reader and accumulate",
        "add up a column of a multi-gigabyte comma separated file",
    ),
    (
        "python",
        "Parse dates from log lines in Python",
        "naive datetimes compared with timezone-aware ones raise TypeError",
        "parse with timezone info and convert to UTC",
        "extract timestamps from server logs and compare them across time zones",
    ),
    (
        "python",
        "Write a retry decorator for flaky network calls",
        "retries immediately without backoff and hammers the server",
        "sleep with exponential backoff and jitter between attempts",
        "decorator that re-attempts failing HTTP requests",
    ),
    (
        "python",
        "Binary search over a sorted list",
        "off-by-one: the loop condition low < high skips the last element",
        "use while low <= high with mid = (low + high) // 2",
        "find the position of a value in an ordered array by halving",
    ),
    (
        "python",
        "Open a file and write results in Python",
        "file handle is never closed when an exception is raised",
        "use a with statement",
        "save computed output to disk from a script",
    ),
    (
        "python",
        "Run shell commands from Python with user-provided file names",
        "shell=True with interpolated input allows command injection",
        "pass an argument list to subprocess.run without shell=True",
        "invoke an external program on a filename the user typed",
    ),
    # -- JavaScript --------------------------------------------------------------------------
    (
        "javascript",
        "Fetch JSON from an API in JavaScript and show it",
        "the promise rejection is never handled",
        "await inside try/catch and check response.ok",
        "load data from a REST endpoint in the browser and render it",
    ),
    (
        "javascript",
        "Compare two values in JavaScript",
        "== coerces types so '0' == 0 is true",
        "use strict equality ===",
        "check whether two JS variables are equal",
    ),
    (
        "javascript",
        "Add click handlers to a list of buttons in a loop",
        "var in the loop makes every handler see the last index",
        "declare the loop variable with let",
        "attach onclick listeners to many buttons inside a for loop",
    ),
    # -- Writing: emails ---------------------------------------------------------------------
    (
        "email",
        "Write an email to a customer apologising for a late delivery",
        "the apology is buried after three paragraphs of excuses",
        "apologise in the first sentence and keep the explanation short",
        "message to a client whose package arrived a week late",
    ),
    (
        "email",
        "Email asking a colleague to review my pull request",
        "no deadline or scope given, so the request is easy to ignore",
        "say which files matter and by when you need the review",
        "ask a teammate to look over my code changes",
    ),
    (
        "email",
        "Cold email to a potential investor",
        "opens with a long company history instead of the ask",
        "state the ask and the traction in the first two lines",
        "first outreach note to a venture capitalist",
    ),
    (
        "email",
        "Reply to an angry customer complaint",
        "defensive tone blames the customer",
        "acknowledge the frustration and offer a concrete remedy",
        "respond to a furious client who wrote to support",
    ),
    # -- Writing: summaries and essays ---------------------------------------------------------
    (
        "summary",
        "Summarise a research paper abstract for a general audience",
        "keeps the jargon of the abstract",
        "replace technical terms with plain words",
        "explain a scientific study's findings to non-experts",
    ),
    (
        "summary",
        "Summarise meeting notes into action items",
        "action items have no owner or due date",
        "give every action an owner and a date",
        "turn the minutes of our call into a to-do list",
    ),
    (
        "essay",
        "Write a persuasive essay on remote work",
        "the counterargument is ignored",
        "address the strongest objection and rebut it",
        "argue for working from home in an opinion piece",
    ),
    (
        "essay",
        "Write an introduction paragraph for a history essay",
        "the thesis statement is missing",
        "end the introduction with a clear one-sentence thesis",
        "opening paragraph of a paper on the French Revolution",
    ),
    # -- Poetry ------------------------------------------------------------------------------
    (
        "poem",
        "Write a haiku about rain",
        "the second line has eight syllables instead of seven",
        "count syllables 5-7-5",
        "a short Japanese-style three line poem about a rainy day",
    ),
    (
        "poem",
        "Write a limerick about a cat",
        "lines 1, 2 and 5 do not rhyme",
        "follow the AABBA rhyme scheme",
        "funny five line rhyme about a kitten",
    ),
    (
        "poem",
        "Write a sonnet about the sea",
        "fourteen lines but no volta before the couplet",
        "turn the argument at line 9 and close with a rhyming couplet",
        "fourteen-line poem about the ocean",
    ),
    # -- Translation -------------------------------------------------------------------------
    (
        "translation",
        "Translate a business letter from English to German",
        "uses informal du instead of Sie",
        "address the reader with the formal Sie",
        "render a formal company letter in German",
    ),
    (
        "translation",
        "Translate a recipe from French to English",
        "cuillère à soupe translated as soup spoon",
        "use tablespoon for cuillère à soupe",
        "English version of a French cooking recipe",
    ),
    # -- Math --------------------------------------------------------------------------------
    (
        "math",
        "Solve the quadratic equation x^2 - 5x + 6 = 0",
        "only one root given",
        "give both roots, x = 2 and x = 3",
        "find the solutions of a second-degree polynomial equation",
    ),
    (
        "math",
        "Compute the probability of two sixes with two dice",
        "added probabilities instead of multiplying independent events",
        "multiply: 1/6 * 1/6 = 1/36",
        "chance of rolling double six with a pair of dice",
    ),
    (
        "math",
        "Calculate compound interest on a savings account",
        "used simple interest formula",
        "use A = P(1 + r/n)^(nt)",
        "how much money grows in a bank account over ten years with interest compounding",
    ),
    (
        "math",
        "Prove that the square root of 2 is irrational",
        "assumes the fraction is in lowest terms without saying so",
        "state that p/q is reduced before deriving that both are even",
        "show sqrt(2) cannot be written as a ratio of integers",
    ),
    # -- Data / shell / devops ---------------------------------------------------------------
    (
        "shell",
        "Bash script to delete old log files",
        "unquoted variable breaks on file names with spaces",
        'quote "$file" and use find -print0 with xargs -0',
        "shell script that removes stale logs from a directory",
    ),
    (
        "shell",
        "Bash script that stops on errors",
        "errors in a pipeline are ignored",
        "use set -euo pipefail",
        "make a bash script exit when any command fails",
    ),
    (
        "docker",
        "Write a Dockerfile for a Python web app",
        "copies the source before installing requirements so every change reinstalls packages",
        "COPY requirements.txt and pip install first, then copy the source",
        "container image build file for a Flask service",
    ),
    (
        "docker",
        "Dockerfile for a production service",
        "runs the app as root",
        "create an unprivileged user and switch to it with USER",
        "harden a container so the process does not have root privileges",
    ),
    (
        "regex",
        "Regex to validate an email address",
        "the dot before the domain is not escaped and matches any character",
        "escape the dot as \\.",
        "regular expression that checks e-mail format",
    ),
    (
        "regex",
        "Regex to match a US phone number",
        "no anchors, so longer strings containing a number also match",
        "anchor with ^ and $",
        "pattern that accepts only valid American telephone numbers",
    ),
    # -- Data analysis -----------------------------------------------------------------------
    (
        "data",
        "Compare the average salary of two groups with pandas",
        "missing values counted as zero lower the mean",
        "drop or impute NaN before taking the mean",
        "mean pay by group in a dataframe with gaps in the data",
    ),
    (
        "data",
        "Train a classifier and report its accuracy",
        "accuracy measured on the training data",
        "hold out a test split and report accuracy on it",
        "evaluate how well a machine learning model predicts labels",
    ),
    (
        "data",
        "Plot monthly temperatures as a chart",
        "the axes have no labels or units",
        "label both axes with units",
        "make a graph of temperature over the year",
    ),
    # -- Legal / business --------------------------------------------------------------------
    (
        "business",
        "Write a product description for an online store",
        "lists features without saying what they do for the buyer",
        "turn each feature into a customer benefit",
        "copy for an e-commerce listing of a backpack",
    ),
    (
        "business",
        "Draft a job posting for a senior backend engineer",
        "no salary range or location given",
        "state the salary range and whether the role is remote",
        "advert to hire an experienced server-side developer",
    ),
    (
        "business",
        "Write a press release announcing a product launch",
        "the headline does not say what was launched",
        "name the product and its main benefit in the headline",
        "news announcement for our new app release",
    ),
]

# Queries about tasks none of the corrections is about.
UNRELATED: list[str] = [
    "What is the capital city of Australia?",
    "Recommend a good hiking trail in the Alps for beginners",
    "Describe the life cycle of a butterfly",
    "What wine pairs well with grilled salmon?",
    "Tips for growing tomatoes on a balcony",
    "Who won the football world cup in 1998?",
    "How do I take care of a sourdough starter?",
    "Plan a weekend trip to Lisbon",
]
