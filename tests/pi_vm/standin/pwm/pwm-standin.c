// SPDX-License-Identifier: GPL-2.0
/*
 * Test only (tests/pi_vm): a Raspberry Pi's PWM pins for the Pi stand-in.
 *
 * The kernel's pwm-gpio driver toggles its line from an hrtimer, so it
 * refuses a GPIO that can sleep, and every gpio-sim line can (gpio-sim keeps
 * its lines under a mutex). This module gives it two lines that never sleep,
 * as a SoC's GPIO block does: a two-line GPIO chip labelled "pwm-standin"
 * that only remembers what it is set to (gpiolib's gpio_value tracepoint
 * records every change, which tests/pi_vm/standin/lines.py reads). Each line
 * goes, through a GPIO lookup table, to one pwm-gpio platform device
 * (pwm-gpio.0: line 0, pwm-gpio.1: line 1), where a device tree would say so.
 */
#include <linux/bitops.h>
#include <linux/gpio/driver.h>
#include <linux/gpio/machine.h>
#include <linux/module.h>
#include <linux/platform_device.h>

static unsigned long levels;

static int standin_get(struct gpio_chip *gc, unsigned int offset)
{
	return test_bit(offset, &levels);
}

static void standin_set(struct gpio_chip *gc, unsigned int offset, int value)
{
	assign_bit(offset, &levels, value);
}

static int standin_output(struct gpio_chip *gc, unsigned int offset, int value)
{
	standin_set(gc, offset, value);
	return 0;
}

static int standin_get_direction(struct gpio_chip *gc, unsigned int offset)
{
	return GPIO_LINE_DIRECTION_OUT;
}

static struct gpio_chip standin_chip = {
	.label = "pwm-standin",
	.owner = THIS_MODULE,
	.base = -1,
	.ngpio = 2,
	.can_sleep = false,
	.get = standin_get,
	.set = standin_set,
	.direction_output = standin_output,
	.get_direction = standin_get_direction,
};

static struct gpiod_lookup_table table0 = {
	.dev_id = "pwm-gpio.0",
	.table = { GPIO_LOOKUP("pwm-standin", 0, NULL, GPIO_ACTIVE_HIGH), { } },
};

static struct gpiod_lookup_table table1 = {
	.dev_id = "pwm-gpio.1",
	.table = { GPIO_LOOKUP("pwm-standin", 1, NULL, GPIO_ACTIVE_HIGH), { } },
};

static struct platform_device *pdev[2];

static int __init standin_init(void)
{
	int i, ret;

	ret = gpiochip_add_data(&standin_chip, NULL);
	if (ret)
		return ret;
	gpiod_add_lookup_table(&table0);
	gpiod_add_lookup_table(&table1);
	for (i = 0; i < 2; i++) {
		pdev[i] = platform_device_register_simple("pwm-gpio", i, NULL, 0);
		if (IS_ERR(pdev[i])) {
			ret = PTR_ERR(pdev[i]);
			while (--i >= 0)
				platform_device_unregister(pdev[i]);
			gpiod_remove_lookup_table(&table1);
			gpiod_remove_lookup_table(&table0);
			gpiochip_remove(&standin_chip);
			return ret;
		}
	}
	return 0;
}

static void __exit standin_exit(void)
{
	platform_device_unregister(pdev[1]);
	platform_device_unregister(pdev[0]);
	gpiod_remove_lookup_table(&table1);
	gpiod_remove_lookup_table(&table0);
	gpiochip_remove(&standin_chip);
}

module_init(standin_init);
module_exit(standin_exit);
MODULE_DESCRIPTION("gravity-led Pi stand-in: non-sleeping GPIO lines for pwm-gpio");
MODULE_LICENSE("GPL");
