"""Calibration text written for this project (varied registers: prose, dialogue, code, lists).

It only has to make every layer fire on ordinary tokens so that spikes stand out; it is never used
for evaluation (that reads human-written text from the system, see edgekit/texts/evaluation.py).
Users pass their own with `--calib-file`.
"""

from __future__ import annotations

CALIBRATION_TEXT = """\
The river had been low all summer, and by September the stones along its bed were white with dust.
Children from the village walked across it on their way to school, counting the fish that had
been trapped in the shrinking pools. Their teacher, a patient woman who had grown up two valleys
away, used the drought as a lesson: how much water does a field of wheat need, and where does the
rain go when it does not reach the river?

"We could dig a well," said the youngest boy. "My grandfather says there is water under the old
mill." The teacher smiled and wrote the question on the board. Nobody knew the answer, so they
spent the afternoon measuring the shadows of the mill, the depth of the dry ditch beside it, and
the distance to the nearest spring.

A small computer on a desk can now run a language model that, ten years ago, would have needed a
room full of servers. The trick is not magic. Most of the weights are stored with four or five
bits instead of sixteen, and the arithmetic is arranged so that memory, not computation, is the
limit. When a token is generated, every weight is read once; a model of two hundred megabytes on
a board that moves four gigabytes per second can therefore produce about twenty tokens a second.

Recipe for a simple bread: 500 g flour, 350 g water, 10 g salt, 5 g yeast. Mix the flour and the
water and leave them for half an hour. Add the salt and the yeast, knead for ten minutes, and let
the dough rise until it has doubled. Shape it, let it rise again, and bake at 230 degrees for
forty minutes. The crust should sound hollow when tapped.

def moving_average(values, window):
    total = sum(values[:window])
    yield total / window
    for old, new in zip(values, values[window:]):
        total += new - old
        yield total / window

In 1854 a physician in London mapped the houses where people had fallen ill and noticed that they
clustered around a single water pump. He persuaded the parish to remove its handle. The number of
new cases fell, although the epidemic was already declining, and the argument about what had
caused it went on for years. What changed minds in the end was not one map but many careful
records, kept by people who did not expect to be thanked.

Meeting notes, Tuesday: (1) the heating in the north building is fixed; (2) the library will
close early on Friday for inventory; (3) volunteers are needed for the spring market - please
write your name on the list by the door; (4) next meeting in two weeks, same room.

She opened the letter slowly, as if the words might change if she hurried. It was short. The
company thanked her for her application, regretted that the position had been filled, and wished
her success. She folded it, put it back in the envelope, and went outside to water the tomatoes,
which at least had done exactly what she had hoped they would.

Question: why is the sky blue? Answer: sunlight contains every colour, but the molecules of the
air scatter short wavelengths much more strongly than long ones, so blue light reaches our eyes
from every direction of the sky, while the sun itself looks slightly yellow. At sunset the light
crosses more air, most of the blue is scattered away, and the remaining light is red and orange.

The train was late again. Passengers stood on the platform with their collars turned up, reading
the same announcement on the board every few minutes as if it might say something new. A man in a
grey coat shared his umbrella with a stranger, and by the time the train arrived they had
discovered that they had been born in the same town, forty years and three streets apart.

Temperatures in the mountains will drop below freezing tonight. Drivers should expect ice on the
high passes, and hikers are advised to check the forecast before setting out. Tomorrow will be
clear and cold, with light winds from the north and a high of four degrees in the valleys.
"""
